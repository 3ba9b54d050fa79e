// The batched forward: the stories260K golden text, batch invariance (a sequence's logits are
// bitwise the same alone or in a batch, whatever the thread count), prompt chunking, KV sharing
// through fork, and clear errors for bad models and bad tokens.
#include <filesystem>
#include <gtest/gtest.h>
#include <omp.h>

#include "core/error.h"
#include "decode/generate.h"
#include "decode/model_runner.h"
#include "model/forward.h"
#include "model/model.h"
#include "support/shared_data.h"
#include "support/temp_path.h"

using ponder::testing::temp_path;

namespace ponder {
namespace {

using ::ponder::testing::shared_path;

// Karpathy's published llama2.c greedy sample for stories260K, as quoted in models/SOURCES.md.
TEST(Forward, Stories260KFromBosReproducesPublishedText) {
  PONDER_REQUIRE_SHARED("models/stories260K.gguf");
  const auto m = load_model(shared_path("models/stories260K.gguf"));
  const auto prompt = m->tokenizer.encode("", true, true);
  ASSERT_EQ(prompt, std::vector<int32_t>{1});
  ModelRunner runner(*m, 300);
  const GenerateResult r = generate(runner, {.prompt = prompt, .strategy = GreedyOptions{}, .stop = {.max_tokens = 256}});
  ASSERT_EQ(r.paths.size(), 1u);
  EXPECT_EQ(r.paths[0].tokens.size(), 256u);
  // Detokenized as llama.cpp does (the first piece's space prefix dropped); the path's text is
  // the exact continuation of the prompt, so it starts with that space.
  const std::string text = m->tokenizer.decode(r.paths[0].tokens);
  EXPECT_EQ(" " + text, r.paths[0].text);
  const std::string expected =
      "Once upon a time, there was a little girl named Lily. She loved to play outside in the park. One day, she "
      "saw a big, red ball. She wanted to play with it, but it was too high.";
  EXPECT_EQ(text.substr(0, expected.size()), expected) << text;
  EXPECT_GE(text.size(), 500u) << "256 tokens of story";
}

int32_t argmax(std::span<const float> x) {
  return int32_t(std::max_element(x.begin(), x.end()) - x.begin());  // the first maximum: lowest id
}

struct Run {
  std::vector<float> logits;  // last-position logits after the prompt and each decode step
};

// Greedy decode of `steps` tokens for several prompts at once, one batch per step.
std::vector<Run> run_batch(const Model& m, const std::vector<std::vector<int32_t>>& prompts, int steps) {
  KvPool pool(m.config.n_layer, m.config.kv_dim(), 16, 256);
  ForwardState st;
  std::vector<KvSeq> seqs(prompts.size());
  std::vector<Run> runs(prompts.size());
  std::vector<float> logits;
  std::vector<int32_t> next(prompts.size());
  const size_t V = size_t(m.config.n_vocab);
  for (int s = 0; s <= steps; ++s) {
    std::vector<BatchItem> batch;
    for (size_t i = 0; i < prompts.size(); ++i)
      batch.push_back({.seq = &seqs[i], .tokens = s == 0 ? std::span<const int32_t>(prompts[i])
                                                         : std::span<const int32_t>(&next[i], 1)});
    forward(m, pool, batch, st, logits);
    for (size_t i = 0; i < prompts.size(); ++i) {
      const std::span<const float> row(logits.data() + i * V, V);
      runs[i].logits.insert(runs[i].logits.end(), row.begin(), row.end());
      next[i] = argmax(row);
    }
  }
  return runs;
}

class BatchInvariance : public ::testing::TestWithParam<const char*> {};

TEST_P(BatchInvariance, AloneEqualsInBatchBitwiseAtAnyThreadCount) {
  PONDER_REQUIRE_SHARED(std::string("models/") + GetParam());
  const auto m = load_model(shared_path(std::string("models/") + GetParam()));
  std::vector<std::vector<int32_t>> prompts;
  for (int i = 0; i < 8; ++i) {
    std::vector<int32_t> p;
    for (int j = 0; j <= 3 * i; ++j) p.push_back(int32_t((37 * i + 11 * j + 5) % m->config.n_vocab));
    prompts.push_back(p);
  }
  const int saved = omp_get_max_threads();
  omp_set_num_threads(2);
  const auto batched = run_batch(*m, prompts, 6);
  for (int threads : {1, 2, 3}) {
    omp_set_num_threads(threads);
    for (size_t i = 0; i < prompts.size(); ++i) {
      const auto alone = run_batch(*m, {prompts[i]}, 6);
      ASSERT_EQ(alone[0].logits.size(), batched[i].logits.size());
      ASSERT_EQ(0, std::memcmp(alone[0].logits.data(), batched[i].logits.data(), alone[0].logits.size() * 4))
          << "sequence " << i << " with " << threads << " threads";
    }
  }
  omp_set_num_threads(saved);
}

INSTANTIATE_TEST_SUITE_P(Models, BatchInvariance,
                         ::testing::Values("stories260K.gguf", "tiny-qwen2-random.gguf", "tiny-qwen2-random-q8_0.gguf",
                                           "kq/tiny-qwen2-kq-q8_0.gguf", "kq/tiny-llama-kq.gguf"),
                         [](const auto& info) {
                           std::string n = info.param;
                           for (char& c : n)
                             if (!isalnum(uint8_t(c))) c = '_';
                           return n;
                         });

// A 100-token prompt processed whole, in chunks of 7 or one token at a time gives bitwise the
// same logits at every position: a path's numbers never depend on how its prompt was cut.
class PromptChunking : public ::testing::TestWithParam<const char*> {};

TEST_P(PromptChunking, WholeChunksOf7AndTokenByTokenAreBitwiseEqual) {
  PONDER_REQUIRE_SHARED(std::string("models/") + GetParam());
  const auto m = load_model(shared_path(std::string("models/") + GetParam()));
  const int V = m->config.n_vocab;
  std::vector<int32_t> prompt;
  for (int j = 0; j < 100; ++j) prompt.push_back(int32_t((37 * j + 11) % V));
  std::vector<std::vector<float>> runs;
  for (size_t chunk : {size_t(100), size_t(7), size_t(1)}) {
    KvPool pool(m->config.n_layer, m->config.kv_dim(), 16, 16);
    KvSeq seq;
    ForwardState st;
    std::vector<float> all, logits;
    for (size_t i = 0; i < prompt.size(); i += chunk) {
      BatchItem item{.seq = &seq, .tokens = std::span<const int32_t>(prompt).subspan(i, std::min(chunk, prompt.size() - i)),
                     .logits = LogitsFor::All};
      forward(*m, pool, {&item, 1}, st, logits);
      all.insert(all.end(), logits.begin(), logits.end());
    }
    ASSERT_EQ(all.size(), prompt.size() * size_t(V));
    runs.push_back(std::move(all));
  }
  for (size_t r = 1; r < runs.size(); ++r)
    for (size_t p = 0; p < prompt.size(); ++p)
      ASSERT_EQ(0, std::memcmp(runs[0].data() + p * V, runs[r].data() + p * V, size_t(V) * 4))
          << (r == 1 ? "chunks of 7" : "token by token") << " differ from the whole prompt at position " << p;
}

INSTANTIATE_TEST_SUITE_P(Models, PromptChunking,
                         ::testing::Values("stories260K.gguf", "kq/tiny-llama-kq-q8_0.gguf", "kq/tiny-qwen2-kq-q8_0.gguf",
                                           "kq/tiny-qwen2-kq.gguf"),
                         [](const auto& info) {
                           std::string n = info.param;
                           for (char& c : n)
                             if (!isalnum(uint8_t(c))) c = '_';
                           return n;
                         });

// A prompt fed in chunks gives the same logits as in one piece; a forked sequence continues
// from the shared prefix exactly as an unshared one.
TEST(Forward, ChunkedPromptAndForkMatchOnePiece) {
  PONDER_REQUIRE_SHARED("models/stories260K.gguf");
  const auto m = load_model(shared_path("models/stories260K.gguf"));
  const auto prompt = m->tokenizer.encode("Once upon a time, there was a little dog named Max who", true, false);
  ASSERT_GT(prompt.size(), 10u);
  KvPool pool(m->config.n_layer, m->config.kv_dim(), 4, 64);
  ForwardState st;
  std::vector<float> whole, chunked, forked;
  KvSeq a, b;
  BatchItem one{.seq = &a, .tokens = prompt};
  forward(*m, pool, {&one, 1}, st, whole);
  const std::span<const int32_t> p(prompt);
  BatchItem first{.seq = &b, .tokens = p.subspan(0, 7), .logits = LogitsFor::None};
  forward(*m, pool, {&first, 1}, st, chunked);
  EXPECT_TRUE(chunked.empty());
  KvSeq c = pool.fork(b);  // shares the 7-position prefix (block size 4: one full, one partial block)
  BatchItem rest_b{.seq = &b, .tokens = p.subspan(7)}, rest_c{.seq = &c, .tokens = p.subspan(7)};
  BatchItem both[2] = {rest_b, rest_c};
  forward(*m, pool, both, st, chunked);
  const size_t V = size_t(m->config.n_vocab);
  ASSERT_EQ(chunked.size(), 2 * V);
  EXPECT_EQ(0, std::memcmp(whole.data(), chunked.data(), V * 4));
  EXPECT_EQ(0, std::memcmp(whole.data(), chunked.data() + V, V * 4));
  EXPECT_EQ(b.blocks[0], c.blocks[0]) << "the full first block stays shared";
  EXPECT_NE(b.blocks[1], c.blocks[1]) << "the partly filled block was copied before writing";
}

TEST(Forward, AllPositionLogitsEqualLastPositionOnes) {
  PONDER_REQUIRE_SHARED("models/stories260K.gguf");
  const auto m = load_model(shared_path("models/stories260K.gguf"));
  const std::vector<int32_t> prompt = {1, 403, 407, 261, 378};
  KvPool pool(m->config.n_layer, m->config.kv_dim(), 16, 8);
  ForwardState st;
  std::vector<float> all, last;
  KvSeq a, b;
  BatchItem ia{.seq = &a, .tokens = prompt, .logits = LogitsFor::All};
  forward(*m, pool, {&ia, 1}, st, all);
  const size_t V = size_t(m->config.n_vocab);
  ASSERT_EQ(all.size(), prompt.size() * V);
  for (size_t n = 1; n <= prompt.size(); ++n) {
    KvSeq s;
    BatchItem it{.seq = &s, .tokens = std::span<const int32_t>(prompt).subspan(0, n)};
    forward(*m, pool, {&it, 1}, st, last);
    EXPECT_EQ(0, std::memcmp(all.data() + (n - 1) * V, last.data(), V * 4)) << "position " << n - 1;
    pool.release(s);
  }
}

TEST(Forward, BadTokensAndFullPoolAreClearErrorsThatChangeNothing) {
  PONDER_REQUIRE_SHARED("models/stories260K.gguf");
  const auto m = load_model(shared_path("models/stories260K.gguf"));
  KvPool pool(m->config.n_layer, m->config.kv_dim(), 4, 2);  // 8 positions
  ForwardState st;
  std::vector<float> logits;
  KvSeq s;
  const std::vector<int32_t> bad = {1, 512};
  BatchItem ib{.seq = &s, .tokens = bad};
  EXPECT_THROW(forward(*m, pool, {&ib, 1}, st, logits), InvalidArgument);
  const std::vector<int32_t> long_prompt(9, 5);
  BatchItem il{.seq = &s, .tokens = long_prompt};
  EXPECT_THROW(forward(*m, pool, {&il, 1}, st, logits), ResourceError);
  EXPECT_EQ(s.n_pos, 0);
  EXPECT_EQ(pool.n_free(), 2);
}

// A model file whose tensors do not fit its metadata is a FormatError naming the tensor.
TEST(Load, BadModelFilesNameTheProblem) {
  PONDER_REQUIRE_SHARED("models/stories260K.gguf");
  const GgufFile f = read_gguf(shared_path("models/stories260K.gguf"));
  const std::string path = temp_path("bad_model.gguf");
  auto write_variant = [&](auto edit_tensors, auto edit_meta) {
    std::vector<GgufTensorData> tensors;
    for (const GgufTensor& t : f.tensors) tensors.push_back({.name = t.name, .ne = t.ne, .type = t.type, .data = t.bytes()});
    auto meta = f.metadata;
    edit_tensors(tensors);
    edit_meta(meta);
    write_gguf(path, meta, tensors);
  };
  auto expect_error = [&](const std::string& needle) {
    try {
      load_model(path);
      ADD_FAILURE() << "expected a FormatError mentioning " << needle;
    } catch (const FormatError& e) {
      EXPECT_NE(std::string(e.what()).find(needle), std::string::npos) << e.what();
      EXPECT_NE(std::string(e.what()).find(path), std::string::npos) << e.what();
    }
  };
  auto no_meta = [](auto&) {};
  auto no_tensors = [](auto&) {};
  write_variant([](auto& ts) { std::erase_if(ts, [](auto& t) { return t.name == "blk.3.ffn_up.weight"; }); }, no_meta);
  expect_error("blk.3.ffn_up.weight");
  write_variant(
      [](auto& ts) {
        for (auto& t : ts)
          if (t.name == "blk.0.attn_q.weight") t.ne = {32, 128}, t.data = t.data.subspan(0, 32 * 128 * 4);
      },
      no_meta);
  expect_error("blk.0.attn_q.weight");
  write_variant(no_tensors, [](auto& meta) {
    for (auto& [k, v] : meta)
      if (k == "general.architecture") v = GgufValue{std::string("mamba")};
  });
  expect_error("mamba");
  write_variant(no_tensors, [](auto& meta) { std::erase_if(meta, [](auto& kv) { return kv.first == "llama.block_count"; }); });
  expect_error("llama.block_count");
  write_variant(no_tensors, [](auto& meta) {
    for (auto& [k, v] : meta)
      if (k == "llama.attention.head_count_kv") v = GgufValue{uint32_t(3)};
  });
  expect_error("head_count_kv");
  std::filesystem::remove(path);
}

}  // namespace
}  // namespace ponder

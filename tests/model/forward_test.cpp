// The batched forward: the stories260K golden text, batch invariance (a sequence's logits are
// bitwise the same alone or in a batch, whatever the thread count), prompt chunking, KV sharing
// through fork, and clear errors for bad models and bad tokens.
#include <algorithm>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <gtest/gtest.h>
#include <omp.h>

#include "core/error.h"
#include "kernels/quant_blocks.h"
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
                                           "kq/tiny-qwen2-kq-q8_0.gguf", "kq/tiny-llama-kq.gguf",
                                           // every quantized type (prompts of 1 to 22 tokens: lone
                                           // rows, groups of 4 and chunks of 8 or more)
                                           "kq/tiny-llama-kq-q4_0.gguf", "kq/tiny-llama-kq-q4_1.gguf",
                                           "kq/tiny-llama-kq-q5_0.gguf", "kq/tiny-llama-kq-q5_1.gguf",
                                           "kq/tiny-llama-kq-iq4_nl.gguf", "kq/tiny-llama-kq-iq4_xs.gguf",
                                           "kq/tiny-llama-kq-q2_k.gguf", "kq/tiny-llama-kq-q3_k_m.gguf",
                                           "kq/tiny-llama-kq-q4_k_m.gguf", "kq/tiny-llama-kq-q5_k_m.gguf",
                                           "kq/tiny-llama-kq-q6_k.gguf", "kq/tiny-qwen2-kq-q4_k_m.gguf"),
                         [](const auto& info) {
                           std::string n = info.param;
                           for (char& c : n)
                             if (!isalnum(uint8_t(c))) c = '_';
                           return n;
                         });

// A 100-token prompt processed whole, in chunks of 7 or in chunks of 2 gives bitwise the same
// logits at every position: a path's numbers never depend on how its prompt was cut. (One token
// at a time is llama.cpp's one-token attention order, as in llama.cpp: attention.h.)
class PromptChunking : public ::testing::TestWithParam<const char*> {};

TEST_P(PromptChunking, WholeChunksOf7AndChunksOf2AreBitwiseEqual) {
  PONDER_REQUIRE_SHARED(std::string("models/") + GetParam());
  const auto m = load_model(shared_path(std::string("models/") + GetParam()));
  const int V = m->config.n_vocab;
  std::vector<int32_t> prompt;
  for (int j = 0; j < 100; ++j) prompt.push_back(int32_t((37 * j + 11) % V));
  std::vector<std::vector<float>> runs;
  for (size_t chunk : {size_t(100), size_t(7), size_t(2)}) {
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
          << (r == 1 ? "chunks of 7" : "chunks of 2") << " differ from the whole prompt at position " << p;
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

// Quantized tensors: an infinite or NaN block scale, a tensor stored in a type whose block does
// not divide its rows, and a file cut inside a tensor are errors naming the tensor.
TEST(Load, MalformedQuantizedTensorsNameTheTensor) {
  PONDER_REQUIRE_SHARED("models/kq/tiny-llama-kq-q4_k_m.gguf");
  const GgufFile f = read_gguf(shared_path("models/kq/tiny-llama-kq-q4_k_m.gguf"));
  const std::string path = temp_path("bad_quant.gguf");
  std::vector<uint8_t> edited;
  auto write_with = [&](const std::string& name, auto edit) {
    std::vector<GgufTensorData> tensors;
    for (const GgufTensor& t : f.tensors) {
      GgufTensorData d{.name = t.name, .ne = t.ne, .type = t.type, .data = t.bytes()};
      if (t.name == name) {
        edited.assign(d.data.begin(), d.data.end());
        edit(d, edited);
        d.data = edited;
      }
      tensors.push_back(d);
    }
    write_gguf(path, f.metadata, tensors);
  };
  auto expect_error = [&](const std::vector<std::string>& needles) {
    try {
      load_model(path);
      ADD_FAILURE() << "expected a FormatError mentioning " << needles[0];
    } catch (const FormatError& e) {
      for (const std::string& n : needles) EXPECT_NE(std::string(e.what()).find(n), std::string::npos) << e.what();
    }
  };
  // Block 1 of row 2 of a Q4_K matrix 768 inputs wide (3 blocks per row).
  std::string q4k;  // an ffn_down in Q4_K (the mix gives some layers Q6_K)
  for (const GgufTensor& t : f.tensors)
    if (t.type == GgmlType::Q4_K && t.ne[0] == 768 && q4k.empty()) q4k = t.name;
  ASSERT_FALSE(q4k.empty());
  for (const uint16_t bad : {uint16_t(0x7c00), uint16_t(0xfc00), uint16_t(0x7e00)})  // +inf, -inf, NaN
    for (const size_t field : {size_t(0), size_t(2)}) {                             // d, dmin
      write_with(q4k, [&](GgufTensorData&, std::vector<uint8_t>& bytes) {
        std::memcpy(bytes.data() + (2 * 3 + 1) * sizeof(BlockQ4_K) + field, &bad, 2);
      });
      expect_error({q4k, "NaN", "block 1 of row 2"});
    }
  // Q6_K keeps its scale at the end of the block.
  write_with("output.weight", [&](GgufTensorData& t, std::vector<uint8_t>& bytes) {
    ASSERT_EQ(t.type, GgmlType::Q6_K);
    const uint16_t nan = 0x7e00;
    std::memcpy(bytes.data() + offsetof(BlockQ6_K, d), &nan, 2);
  });
  expect_error({"output.weight", "block 0 of row 0"});
  // A type whose blocks do not divide the row: qwen2's 384-wide Q5_0 rows relabelled Q4_K (256
  // per block) in the tensor's header entry (name, n_dims, ne[], type).
  {
    PONDER_REQUIRE_SHARED("models/kq/tiny-qwen2-kq-q4_k_m.gguf");
    std::ifstream in(shared_path("models/kq/tiny-qwen2-kq-q4_k_m.gguf"), std::ios::binary);
    std::vector<char> bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    const std::string name = "blk.0.attn_q.weight";
    const auto at = std::search(bytes.begin(), bytes.end(), name.begin(), name.end());
    ASSERT_NE(at, bytes.end());
    const size_t type_at = size_t(at - bytes.begin()) + name.size() + 4 + 2 * 8;
    uint32_t type = 0;
    std::memcpy(&type, bytes.data() + type_at, 4);
    ASSERT_EQ(type, uint32_t(GgmlType::Q5_0));
    type = uint32_t(GgmlType::Q4_K);
    std::memcpy(bytes.data() + type_at, &type, 4);
    std::ofstream(path, std::ios::binary).write(bytes.data(), std::streamsize(bytes.size()));
    expect_error({name, "384", "256"});
  }
  // The file cut inside the last tensor.
  write_with("", [](GgufTensorData&, std::vector<uint8_t>&) {});
  std::filesystem::resize_file(path, std::filesystem::file_size(path) - 1000);
  expect_error({"tensor '", "truncated"});
  std::filesystem::remove(path);
}

}  // namespace
}  // namespace ponder

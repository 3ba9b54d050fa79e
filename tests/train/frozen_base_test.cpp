// LoRA with the base frozen in its stored type (TrainModel::frozen: every matrix, the embedding and
// LM head too): a training step on a quantized or F16 file is, bit for bit, the step on the same
// weights held as f32 parameters; the engine runs the adapters without merging them (LoraDelta), as
// the trainer's forward computes them.
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <gtest/gtest.h>

#include "core/error.h"
#include "core/rng.h"
#include "kernels/activation.h"
#include "model/forward.h"
#include "support/shared_data.h"
#include "train/engine_logp.h"
#include "support/temp_path.h"
#include "train/forward_train.h"
#include "train/lora.h"
#include "train/model_io.h"

namespace ponder {
namespace {

using ::ponder::testing::engine_logp;

using ::ponder::testing::shared_path;

TrainBatch random_batch(int vocab, int B, int T, uint64_t seed) {
  Rng rng(seed);
  TrainBatch b{.B = B, .T = T};
  for (int i = 0; i < B * T; ++i) b.tokens.push_back(int32_t(rng.below(uint64_t(vocab))));
  for (int i = 0; i < B * T; ++i) b.targets.push_back((i + 1) % T == 0 ? -1 : b.tokens[size_t(i) + 1]);
  return b;
}

// Adapters on all seven matrices with non-zero A and B, so that every adapter moves the outputs.
LoraAdapters random_adapters(const TrainConfig& c, uint64_t seed) {
  LoraAdapters lora(c, {.rank = 4, .alpha = 8.0f});
  Rng rng(seed);
  for (float& p : lora.params) p = 0.05f * float(rng.normal());
  return lora;
}

class FrozenBase : public ::testing::TestWithParam<const char*> {};

// The frozen matrices dequantize to exactly what import_gguf stores as f32, and the step reads
// them through the same sgemm calls: loss, log-probs and adapter gradients are bitwise equal.
TEST_P(FrozenBase, TrainingStepEqualsTheF32BaseBitwise) {
  PONDER_REQUIRE_SHARED(GetParam());
  const GgufFile f = read_gguf(shared_path(GetParam()));
  const TrainModel full = import_gguf(f);
  const TrainModel frozen = import_gguf(f, true);
  ASSERT_TRUE(frozen.frozen);
  // Only the norms and biases are f32 parameters: no matrix, the embedding and LM head included.
  const TrainConfig& c = full.config;
  EXPECT_EQ(frozen.params.size(), ParamLayout::for_config(c, true).total);
  EXPECT_LT(frozen.params.size(), size_t(c.n_layers) * 8 * size_t(c.dim + c.ffn));
  EXPECT_EQ(frozen.frozen->token_embd.n_rows, c.vocab);
  EXPECT_EQ(frozen.frozen->output.data == frozen.frozen->token_embd.data, c.tied);
  EXPECT_EQ(frozen.frozen->layers.size(), size_t(full.config.n_layers));
  EXPECT_EQ(thaw(frozen).params, full.params);

  const LoraAdapters lora = random_adapters(full.config, 5);
  const TrainBatch b = random_batch(full.config.vocab, 2, 24, 9);
  Activations a1, a2;
  std::vector<float> lp1, lp2, g1, g2;
  EXPECT_EQ(forward_train(full, b, a1, lp1, 1.0f, &lora), forward_train(frozen, b, a2, lp2, 1.0f, &lora));
  EXPECT_EQ(lp1, lp2);
  std::vector<float> dlogp(lp1.size());
  for (size_t i = 0; i < dlogp.size(); ++i) dlogp[i] = b.targets[i] >= 0 ? -0.02f : 0.0f;
  backward_train(full, b, a1, dlogp, g1, &lora);
  backward_train(frozen, b, a2, dlogp, g2, &lora);
  ASSERT_EQ(g1.size(), lora.params.size());
  EXPECT_EQ(g1, g2);
  float largest = 0;
  for (float g : g1) largest = std::max(largest, std::fabs(g));
  EXPECT_GT(largest, 0.0f);
}

INSTANTIATE_TEST_SUITE_P(SharedModels, FrozenBase,
                         ::testing::Values("models/kq/tiny-qwen2-kq-q8_0.gguf", "models/kq/tiny-qwen2-kq-q4_k_m.gguf",
                                           "models/kq/tiny-llama-kq-q6_k.gguf", "models/kq/tiny-llama-kq.gguf",
                                           // 152K-word vocabularies (F16, Q8_0): the LM head in 38 pieces
                                           "models/tiny-r1distill-random.gguf", "models/tiny-qwen2-random-q8_0.gguf"));

// The engine with the adapters attached (an f32 base, so both sides multiply in f32) gives the
// trainer's log-probs within 1e-5 relative (the import test's bound: the two sum in different
// orders), follows the adapters as they change in place, and keeps batch invariance: a sequence's
// logits are the same bits alone and next to another sequence.
TEST(FrozenBaseEngine, RunsTheAdaptersAsTheTrainerAndFollowsTheirUpdates) {
  const char* rel = "models/kq/tiny-qwen2-kq.gguf";
  PONDER_REQUIRE_SHARED(rel);
  const GgufFile src = read_gguf(shared_path(rel));
  const std::string path = ::ponder::testing::temp_path("frozen_base_f32.gguf");
  export_gguf(import_gguf(src), tokenizer_metadata(src), path);
  const TrainModel m = import_gguf(read_gguf(path), true);
  LoraAdapters lora = random_adapters(m.config, 3);
  const TrainBatch b = random_batch(m.config.vocab, 1, 40, 4);
  Activations acts;
  std::vector<float> logp;
  forward_train(m, b, acts, logp, 1.0f, &lora);

  const auto engine = load_model(path);
  const std::vector<double> plain = engine_logp(*engine, b);
  attach_lora(*engine, lora);
  const std::vector<double> adapted = engine_logp(*engine, b);
  double worst = 0, moved = 0;
  for (int t = 0; t + 1 < b.T; ++t) {
    const double lp = logp[size_t(t)];
    worst = std::max(worst, std::fabs(adapted[size_t(t)] - lp) / std::max(1.0, std::fabs(lp)));
    moved = std::max(moved, std::fabs(adapted[size_t(t)] - plain[size_t(t)]));
  }
  std::printf("engine with attached adapters against the trainer: max relative log-prob difference %.2e; "
              "the adapters move log-probs by up to %.2e\n", worst, moved);
  EXPECT_LT(worst, 1e-5);
  EXPECT_GT(moved, 1e-3);

  // Updates in place reach the engine without attaching again.
  for (float& p : lora.params) p *= 0.5f;
  EXPECT_NE(engine_logp(*engine, b), adapted);

  // Batch invariance with adapters: alone, then next to another sequence.
  KvPool pool(engine->config.n_layer, engine->config.kv_dim(), 16, 16);
  ForwardState st;
  const std::vector<int32_t> prompt(b.tokens.begin(), b.tokens.begin() + 20), other(b.tokens.begin() + 5, b.tokens.end());
  auto last = [&](std::vector<BatchItem> items) {
    std::vector<float> logits;
    forward(*engine, pool, items, st, logits);
    return std::vector<float>(logits.begin(), logits.begin() + engine->config.n_vocab);
  };
  KvSeq s1, s2, s3;
  const std::vector<float> alone = last({{.seq = &s1, .tokens = prompt, .logits = LogitsFor::Last}});
  const std::vector<float> batched = last({{.seq = &s2, .tokens = prompt, .logits = LogitsFor::Last},
                                           {.seq = &s3, .tokens = other, .logits = LogitsFor::Last}});
  EXPECT_EQ(alone, batched);
  pool.release(s1);
  pool.release(s2);
  pool.release(s3);
}

// An adapter made for another model is refused, naming the matrix.
TEST(FrozenBaseEngine, AttachRefusesAdaptersOfAnotherShape) {
  const char* rel = "models/kq/tiny-qwen2-kq.gguf";
  PONDER_REQUIRE_SHARED(rel);
  const auto engine = load_model(shared_path(rel));
  const TrainModel m = import_gguf(read_gguf(shared_path(rel)), true);
  TrainConfig other = m.config;
  other.ffn += 32;
  const LoraAdapters lora(other, {.rank = 2, .alpha = 4.0f});
  try {
    attach_lora(*engine, lora);
    FAIL() << "an adapter for another FFN width was attached";
  } catch (const InvalidArgument& e) {
    EXPECT_NE(std::string(e.what()).find("blk.0.ffn_gate.weight"), std::string::npos) << e.what();
  }
}

}  // namespace
}  // namespace ponder

// The memory of a training step, counted before anything is allocated, against what forward_train
// and backward_train really allocate; and flags the machine cannot hold are errors naming them.
#include <gtest/gtest.h>

#include <optional>

#include "core/error.h"
#include "train/char_vocab.h"
#include "train/forward_train.h"
#include "train/memory.h"
#include "train/sft.h"
#include "support/temp_path.h"

using ponder::testing::temp_path;

namespace ponder {
namespace {

size_t allocated_floats(const Activations& a) {
  size_t n = 0;
  for (const std::vector<float>* v :
       {&a.x_in, &a.xn1, &a.rstd1, &a.q, &a.k, &a.v, &a.probs, &a.att, &a.x_mid, &a.xn2, &a.rstd2, &a.gate, &a.up, &a.h,
        &a.x_final, &a.xnf, &a.rstdf, &a.logits, &a.rope_cos, &a.rope_sin, &a.dx, &a.dxn, &a.dbig, &a.dbig2, &a.datt,
        &a.dq, &a.dk, &a.dv, &a.ffn_fm})
    n += v->size();
  n += a.lora_u.size() + a.lora_du.size() + a.frozen_w.size();
  const FrozenHeadScratch& h = a.head;
  n += h.mean.size() + h.max.size() + 2 * h.sum.size() + h.target.size();
  for (const auto& per_thread : {&h.logits, &h.rows})
    for (const std::vector<float>& v : *per_thread) n += v.size();
  return n;
}

// One forward and backward of a small model (B 3 x T 20, or `rows` x 20): what they allocated, in
// bytes, and the parameter and gradient counts.
struct StepAllocation {
  TrainConfig c{.vocab = 40, .dim = 16, .n_layers = 2, .n_heads = 4, .n_kv_heads = 2, .ffn = 24, .ctx = 32};
  int B = 3, T = 20;
  Activations acts;
  double activation_bytes = 0;
  size_t params = 0, grads = 0;
  explicit StepAllocation(const LoraConfig& lora_config = {.rank = 0}, int rows = 3) : B(rows) {
    TrainModel m(c);
    init_params(m, 3);
    TrainBatch b{.B = B, .T = T};
    for (int i = 0; i < B * T; ++i) b.tokens.push_back(i % c.vocab), b.targets.push_back((i + 1) % c.vocab);
    std::vector<float> logp, g;
    std::optional<LoraAdapters> lora;
    if (lora_config.enabled()) lora.emplace(c, lora_config);
    const LoraAdapters* adapters = lora ? &*lora : nullptr;
    forward_train(m, b, acts, logp, 1.0f, adapters);
    const std::vector<float> dlogp(logp.size(), -0.01f);
    backward_train(m, b, acts, dlogp, g, adapters);
    activation_bytes = double(allocated_floats(acts) + logp.size() + dlogp.size()) * 4;
    params = m.params.size();
    grads = g.size();
  }
};

TEST(TrainMemory, CountsWhatForwardAndBackwardAllocate) {
  const StepAllocation s;
  const TrainStepMemory need = training_step_memory(s.c, s.B, s.T);
  EXPECT_FALSE(s.acts.probs.empty()) << "small: the attention probabilities are kept";
  EXPECT_EQ(need.activations, s.activation_bytes);
  EXPECT_EQ(need.params, double(s.params) * 4);
  EXPECT_EQ(need.grads, double(s.grads) * 4);
  EXPECT_EQ(need.optimizer, 2 * need.params) << "AdamW m and v";
}

// Probabilities too large to keep are not counted, and not allocated: backward recomputes them.
TEST(TrainMemory, CountsNoAttentionProbabilitiesWhenTheyAreRecomputed) {
  struct LimitGuard {
    ~LimitGuard() { set_attention_probs_limit_for_testing(-1); }
  } guard;
  set_attention_probs_limit_for_testing(0);
  const StepAllocation s;
  EXPECT_TRUE(s.acts.probs.empty());
  const TrainStepMemory need = training_step_memory(s.c, s.B, s.T);
  EXPECT_EQ(need.activations, s.activation_bytes);
  set_attention_probs_limit_for_testing(-1);
  EXPECT_EQ(training_step_memory(s.c, s.B, s.T).activations - need.activations,
            double(s.B) * s.c.n_heads * s.T * s.T * s.c.n_layers * 4)
      << "kept: B x H x T x T floats per layer";
}

// LoRA: the adapters' activations, and the frozen head's scratch in place of the logits.
TEST(TrainMemory, CountsWhatALoraStepAllocates) {
  const LoraConfig lora{.rank = 2, .alpha = 4.0f};
  const StepAllocation s(lora);
  EXPECT_TRUE(s.acts.logits.empty()) << "the head gets no gradient: no (N, V) logits";
  const TrainStepMemory need = training_step_memory(s.c, s.B, s.T, lora);
  EXPECT_EQ(need.activations, s.activation_bytes);
  EXPECT_EQ(need.grads, double(s.grads) * 4);
}

// Fewer tokens (20) than FFN features (24): gate and up go through one layer's transposed scratch.
TEST(TrainMemory, CountsTheTransposedFfnScratch) {
  const StepAllocation s({.rank = 0}, 1);
  ASSERT_TRUE(s.acts.ffn_t);
  EXPECT_EQ(s.acts.ffn_fm.size(), size_t(2 * s.T * s.c.ffn));
  EXPECT_EQ(training_step_memory(s.c, s.B, s.T).activations, s.activation_bytes);
}

TEST(TrainMemory, TooMuchIsAnErrorNamingTheFlagsAndGiB) {
  const TrainStepMemory need{.params = 1 << 30, .grads = 1 << 30, .optimizer = 2.0 * (1 << 30), .activations = 6.0 * (1 << 30)};
  EXPECT_NO_THROW(check_training_memory(need, "--batch 8", 20.0 * (1 << 30)));
  try {
    check_training_memory(need, "--batch 8 and --max-len 256", 8.0 * (1 << 30));
    FAIL() << "10 GiB accepted with 8 available";
  } catch (const InvalidArgument& e) {
    const std::string m = e.what();
    EXPECT_NE(m.find("--batch 8 and --max-len 256 need 10.0 GiB"), std::string::npos) << m;
    EXPECT_NE(m.find("activations 6.0 GiB"), std::string::npos) << m;
    EXPECT_NE(m.find("8.0 GiB this machine has available"), std::string::npos) << m;
  }
  const double avail = available_memory_bytes();
  EXPECT_GT(avail, 1e6) << "MemAvailable read";
}

TEST(TrainMemory, SftRefusesABatchTheMachineCannotHold) {
  SftOptions o;
  o.task.name = "arith";
  o.preset = "tiny";
  o.steps = 1;
  o.batch_size = 1'000'000;  // (B, H, T, T) probabilities alone: ~1 TB per layer
  o.out_dir = temp_path("sft_memory");
  o.quiet = true;
  try {
    run_sft(o);
    FAIL() << "a 1,000,000-row batch was accepted";
  } catch (const InvalidArgument& e) {
    const std::string m = e.what();
    EXPECT_NE(m.find("--batch 1000000"), std::string::npos) << m;
    EXPECT_NE(m.find("--max-len 256"), std::string::npos) << m;
    EXPECT_NE(m.find("GiB"), std::string::npos) << m;
  }
}

}  // namespace
}  // namespace ponder

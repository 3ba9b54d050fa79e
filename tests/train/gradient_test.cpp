// The training backward pass against central finite differences of the forward pass, for every
// parameter of a tiny model, tied and untied, llama (adjacent-pair RoPE) and qwen2 (Q/K/V biases,
// NeoX RoPE), with a loss that weighs positions differently.
#include <cmath>
#include <cstring>
#include <functional>
#include <gtest/gtest.h>

#include "core/rng.h"
#include "decode/model_runner.h"
#include "kernels/activation.h"
#include "model/forward.h"
#include "train/char_vocab.h"
#include "train/forward_train.h"
#include "train/model_io.h"

namespace ponder {
namespace {

double weighted_loss(const TrainModel& m, const TrainBatch& b, const std::vector<float>& weights, float temperature,
                     const LoraAdapters* lora = nullptr) {
  Activations a;
  std::vector<float> logp;
  forward_train(m, b, a, logp, temperature, lora);
  double s = 0;
  for (size_t i = 0; i < logp.size(); ++i) s += double(weights[i]) * logp[i];
  return s;
}

// temperature != 1: log-probs of softmax(logits / T), as GRPO uses for rollouts sampled at T.
// T > kAttnRows crosses the causal attention blocks (the last one partial).
void check_gradients(bool tied, float temperature = 1.0f, int T = 5, const std::string& arch = "llama") {
  // Long sequences also use two KV heads of two query heads each (attention runs per KV group).
  const bool long_seq = T > 8;
  TrainConfig c{.vocab = 11, .dim = 8, .n_layers = 2, .n_heads = long_seq ? 4 : 2, .n_kv_heads = long_seq ? 2 : 1,
                .ffn = 12, .ctx = std::max(8, T), .tied = tied, .arch = arch};
  TrainModel m(c);
  Rng rng(tied ? 1 : 2);
  // Long sequences use each embedding row many times: smaller weights keep the loss close to
  // linear over the finite-difference step.
  const float spread = T > 8 ? 0.2f : 0.4f;
  for (float& p : m.params) p = spread * float(rng.normal());
  for (const ParamTensor& t : m.layout.tensors)  // norms near 1
    if (t.shape.size() == 1)
      for (size_t i = 0; i < t.size; ++i) m.params[t.offset + i] = 1.0f + 0.2f * float(rng.normal());
  TrainBatch b{.B = 2, .T = T};
  for (int i = 0; i < 2 * T; ++i) {
    b.tokens.push_back(int32_t(rng.below(11)));
    b.targets.push_back(i == T - 1 || i == 2 * T - 2 ? -1 : int32_t(rng.below(11)));
  }
  std::vector<float> weights(size_t(2 * T));
  for (int i = 0; i < 2 * T; ++i) weights[size_t(i)] = b.targets[size_t(i)] < 0 ? 0.0f : float(rng.uniform() - 0.7);
  // Long sequences: a loss on every 13th position (in every attention block) keeps the float
  // rounding of the summed loss well below the finite-difference tolerance.
  if (T > 8)
    for (int i = 0; i < 2 * T; ++i)
      if (i % 13 != 12) weights[size_t(i)] = 0.0f;

  Activations a;
  std::vector<float> logp, grads;
  forward_train(m, b, a, logp, temperature);
  backward_train(m, b, a, weights, grads);

  int checked = 0;
  double worst = 0;
  for (const ParamTensor& t : m.layout.tensors) {
    for (size_t i = 0; i < t.size; ++i) {
      float& p = m.params[t.offset + i];
      const float saved = p;
      // The central difference D(h), with a step large enough to keep the float rounding of the
      // loss small; where the loss curves, its truncation error (about 4/3 |D(h) - D(h/2)|, the
      // h^2 term) is added to the tolerance.
      const float h = (T > 8 ? 3e-3f : 1e-2f) * std::max(1.0f, std::fabs(saved));  // see spread
      auto central = [&](float step) {
        p = saved + step;
        const double up = weighted_loss(m, b, weights, temperature);
        p = saved - step;
        const double down = weighted_loss(m, b, weights, temperature);
        p = saved;
        return (up - down) / (double(saved + step) - double(saved - step));
      };
      const double fd = central(h), truncation = 4.0 / 3.0 * std::fabs(fd - central(0.5f * h));
      const double g = grads[t.offset + i];
      const double err = std::fabs(fd - g);
      worst = std::max(worst, err / (std::fabs(fd) + 1e-3));
      ASSERT_LE(err, 2e-2 * std::fabs(fd) + 2e-4 + truncation)
          << t.name << "[" << i << "]: backward " << g << ", finite difference " << fd << " (truncation " << truncation << ")";
      ++checked;
    }
  }
  EXPECT_EQ(checked, int(m.layout.total));
  std::printf("gradients of all %d parameters (%s, %s, T=%.2f) match finite differences; worst relative error %.2e\n",
              checked, arch.c_str(), tied ? "tied" : "untied", double(temperature), worst);
}

TEST(TrainGradients, MatchFiniteDifferencesTied) { check_gradients(true); }
TEST(TrainGradients, MatchFiniteDifferencesUntied) { check_gradients(false); }
TEST(TrainGradients, MatchFiniteDifferencesAtATemperature) { check_gradients(false, 0.7f); }
TEST(TrainGradients, MatchFiniteDifferencesAcrossAttentionBlocks) { check_gradients(true, 1.0f, 2 * kAttnRows + 22); }
// qwen2: Q/K/V biases and NeoX RoPE; tied (as the R1-Distill-Qwen files) and untied, two query
// heads per KV head.
TEST(TrainGradients, Qwen2MatchFiniteDifferencesTied) { check_gradients(true, 1.0f, 5, "qwen2"); }
TEST(TrainGradients, Qwen2MatchFiniteDifferencesUntied) { check_gradients(false, 1.0f, 5, "qwen2"); }
TEST(TrainGradients, Qwen2MatchFiniteDifferencesAcrossAttentionBlocks) {
  check_gradients(true, 1.0f, 2 * kAttnRows + 22, "qwen2");
}

// A model of config c with random weights and rank-2 adapters, and a batch of B random sequences of
// T tokens, run forward and backward twice, after set_way(0) and after set_way(1), without and with
// the adapters: both ways must give the same log-probs and gradients, bit for bit. took_way1(a)
// says whether a forward ran the second way.
void expect_same_bits_both_ways(const TrainConfig& c, int B, int T, uint64_t seed,
                                const std::function<void(int)>& set_way,
                                const std::function<bool(const Activations&)>& took_way1) {
  TrainModel m(c);
  Rng rng(seed);
  for (float& p : m.params) p = 0.3f * float(rng.normal());
  LoraAdapters lora(c, LoraConfig{.rank = 2, .alpha = 4.0f});
  init_lora(lora, 3);
  for (float& p : lora.params) p = 0.2f * float(rng.normal());
  TrainBatch b{.B = B, .T = T};
  for (int i = 0; i < B * T; ++i) {
    b.tokens.push_back(int32_t(rng.below(uint64_t(c.vocab))));
    b.targets.push_back((i + 1) % T == 0 ? -1 : int32_t(rng.below(uint64_t(c.vocab))));
  }
  for (const LoraAdapters* ad : {static_cast<const LoraAdapters*>(nullptr), static_cast<const LoraAdapters*>(&lora)}) {
    std::vector<float> logp[2], grads[2];
    for (int way = 0; way < 2; ++way) {
      set_way(way);
      Activations a;
      forward_train(m, b, a, logp[way], 1.0f, ad);
      ASSERT_EQ(took_way1(a), way == 1);
      std::vector<float> dlogp(logp[way].size());
      for (size_t i = 0; i < dlogp.size(); ++i) dlogp[i] = -0.01f * float(1 + i % 3);
      grads[way].assign(ad ? lora.params.size() : m.params.size(), 0.0f);
      backward_train(m, b, a, dlogp, grads[way], ad);
    }
    ASSERT_EQ(std::memcmp(logp[0].data(), logp[1].data(), logp[0].size() * sizeof(float)), 0) << (ad ? "LoRA" : "full");
    for (size_t i = 0; i < grads[0].size(); ++i)
      ASSERT_EQ(std::memcmp(&grads[0][i], &grads[1][i], sizeof(float)), 0)
          << (ad ? "LoRA" : "full") << " parameter " << i << ": " << grads[0][i] << " vs " << grads[1][i];
  }
}

// Long sequences do not keep the attention probabilities: backward recomputes each block. Both
// paths must give the same bits (the kept one is the one checked against finite differences above),
// for full training and for LoRA, across attention blocks and KV groups.
TEST(TrainGradients, RecomputedAttentionProbabilitiesGiveTheSameBits) {
  struct LimitGuard {
    ~LimitGuard() { set_attention_probs_limit_for_testing(-1); }
  } guard;
  const TrainConfig c{.vocab = 11, .dim = 8, .n_layers = 2, .n_heads = 4, .n_kv_heads = 2, .ffn = 12,
                      .ctx = 2 * kAttnRows + 22, .tied = true, .arch = "qwen2"};
  expect_same_bits_both_ways(
      c, 2, c.ctx, 9, [](int recompute) { set_attention_probs_limit_for_testing(recompute ? 0.0 : -1.0); },
      [](const Activations& a) { return !a.probs_kept; });
}

// A batch with fewer tokens than FFN features computes gate and up transposed (gate^T = W x^T)
// and brings them back to token rows in tiles that SwiGLU reads; the finite-difference checks
// above run it (10 tokens, F = 12). Both ways must give the same bits, full and LoRA, over a whole
// and a partial tile of tokens (140) and F = 264: eight whole tiles of features and 8 more
// (SwiGLU's scalar tail).
TEST(TrainGradients, FeatureMajorFfnGivesTheSameBits) {
  struct LayoutGuard {
    ~LayoutGuard() { set_ffn_feature_major_for_testing(-1); }
  } guard;
  const TrainConfig c{.vocab = 13, .dim = 16, .n_layers = 2, .n_heads = 4, .n_kv_heads = 2, .ffn = 264, .ctx = 70,
                      .tied = false, .arch = "qwen2"};
  expect_same_bits_both_ways(
      c, 2, 70, 21, [](int feature_major) { set_ffn_feature_major_for_testing(feature_major); },
      [](const Activations& a) { return a.ffn_t; });
}

// LoRA: the gradients of every adapter parameter (A and B of all seven matrices of both layers)
// against finite differences, the base frozen (no gradient for it); B starts non-zero so that A's
// gradients are not trivially zero.
void check_lora_gradients(const std::string& arch) {
  TrainConfig c{.vocab = 11, .dim = 8, .n_layers = 2, .n_heads = 2, .n_kv_heads = 1, .ffn = 12, .ctx = 8, .tied = true,
                .arch = arch};
  TrainModel m(c);
  Rng rng(9);
  for (float& p : m.params) p = 0.4f * float(rng.normal());
  for (const ParamTensor& t : m.layout.tensors)
    if (t.shape.size() == 1 && !t.name.ends_with(".bias"))
      for (size_t i = 0; i < t.size; ++i) m.params[t.offset + i] = 1.0f + 0.2f * float(rng.normal());
  LoraAdapters lora(c, {.rank = 2, .alpha = 3.0f});
  for (float& p : lora.params) p = 0.3f * float(rng.normal());
  const int T = 5;
  TrainBatch b{.B = 2, .T = T};
  for (int i = 0; i < 2 * T; ++i) {
    b.tokens.push_back(int32_t(rng.below(11)));
    b.targets.push_back(i == T - 1 ? -1 : int32_t(rng.below(11)));
  }
  std::vector<float> weights(size_t(2 * T));
  for (int i = 0; i < 2 * T; ++i) weights[size_t(i)] = b.targets[size_t(i)] < 0 ? 0.0f : float(rng.uniform() - 0.7);
  Activations a;
  std::vector<float> logp, grads;
  forward_train(m, b, a, logp, 1.0f, &lora);
  backward_train(m, b, a, weights, grads, &lora);
  ASSERT_EQ(grads.size(), lora.layout.total) << "gradients of the adapters only";
  double worst = 0;
  for (size_t i = 0; i < lora.params.size(); ++i) {
    float& p = lora.params[i];
    const float saved = p, h = 1e-2f;
    auto central = [&](float step) {
      p = saved + step;
      const double up = weighted_loss(m, b, weights, 1.0f, &lora);
      p = saved - step;
      const double down = weighted_loss(m, b, weights, 1.0f, &lora);
      p = saved;
      return (up - down) / (double(saved + step) - double(saved - step));
    };
    const double fd = central(h), truncation = 4.0 / 3.0 * std::fabs(fd - central(0.5f * h));
    const double err = std::fabs(fd - grads[i]);
    worst = std::max(worst, err / (std::fabs(fd) + 1e-3));
    ASSERT_LE(err, 2e-2 * std::fabs(fd) + 2e-4 + truncation) << "adapter parameter " << i << ": backward " << grads[i]
                                                             << ", finite difference " << fd;
  }
  std::printf("LoRA gradients of all %zu adapter parameters (%s) match finite differences; worst relative error %.2e\n",
              lora.params.size(), arch.c_str(), worst);
}

TEST(TrainGradients, LoraMatchFiniteDifferencesLlama) { check_lora_gradients("llama"); }
TEST(TrainGradients, LoraMatchFiniteDifferencesQwen2) { check_lora_gradients("qwen2"); }

// Zero B gives the base model's log-probs bit for bit; the merged model (W + s B A) gives the
// adapted model's within float rounding.
TEST(TrainLora, StartsAtTheBaseAndMergesIntoIt) {
  TrainConfig c{.vocab = 23, .dim = 16, .n_layers = 2, .n_heads = 4, .n_kv_heads = 2, .ffn = 24, .ctx = 16,
                .tied = false, .arch = "qwen2"};
  TrainModel m(c);
  init_params(m, 4);
  LoraAdapters lora(c, {.rank = 4, .alpha = 8.0f, .targets = parse_lora_targets("q,v,down")});
  EXPECT_EQ(lora.layout.tensors.size(), 2u * 3u * 2u);
  init_lora(lora, 5);
  TrainBatch b{.B = 1, .T = 12};
  for (int i = 0; i < 12; ++i) b.tokens.push_back(int32_t((i * 7) % 23)), b.targets.push_back(int32_t((i * 5 + 1) % 23));
  Activations a;
  std::vector<float> base, adapted, merged;
  forward_train(m, b, a, base);
  forward_train(m, b, a, adapted, 1.0f, &lora);
  EXPECT_EQ(base, adapted) << "B = 0: the adapters add exactly nothing";
  Rng rng(6);
  for (float& p : lora.params) p += 0.2f * float(rng.normal());
  forward_train(m, b, a, adapted, 1.0f, &lora);
  TrainModel mm = m;
  merge_lora(mm, lora);
  forward_train(mm, b, a, merged);
  double diff = 0, moved = 0;
  for (size_t i = 0; i < base.size(); ++i)
    diff = std::max(diff, double(std::fabs(adapted[i] - merged[i]))), moved = std::max(moved, double(std::fabs(adapted[i] - base[i])));
  EXPECT_LT(diff, 1e-5);
  EXPECT_GT(moved, 1e-2) << "the adapters should change the log-probs";
}

// The training forward on a sequence longer than an attention block against the inference
// engine's forward (its own attention over the KV cache) on the same weights.
TEST(TrainForward, LongSequenceMatchesTheInferenceEngine) {
  const Tokenizer tok = char_tokenizer();
  TrainConfig c{.vocab = int(tok.n_vocab()), .dim = 32, .n_layers = 2, .n_heads = 4, .n_kv_heads = 2, .ffn = 48, .ctx = 256};
  TrainModel m(c);
  init_params(m, 3);
  for (float& p : m.params) p *= 8.0f;  // sharper attention than at initialisation
  for (const ParamTensor& t : m.layout.tensors)
    if (t.shape.size() == 1)
      for (size_t i = 0; i < t.size; ++i) m.params[t.offset + i] = 1.0f;
  const int T = 3 * kAttnRows + 9;
  Rng rng(11);
  TrainBatch b{.B = 1, .T = T};
  for (int i = 0; i < T; ++i) b.tokens.push_back(int32_t(rng.below(uint64_t(c.vocab))));
  for (int i = 0; i < T; ++i) b.targets.push_back(i + 1 < T ? b.tokens[size_t(i) + 1] : -1);
  Activations acts;
  std::vector<float> logp;
  forward_train(m, b, acts, logp);
  const auto model = inference_model(m, tok);
  KvPool pool(model->config.n_layer, model->config.kv_dim(), 16, (T + 15) / 16 + 1);
  KvSeq seq;
  ForwardState st;
  std::vector<float> logits;
  BatchItem item{.seq = &seq, .tokens = b.tokens, .logits = LogitsFor::All};
  forward(*model, pool, {&item, 1}, st, logits);
  double max_diff = 0, spread = 0;
  for (int t = 0; t + 1 < T; ++t) {
    const float* row = logits.data() + size_t(t) * size_t(c.vocab);
    const double lp = double(row[b.targets[size_t(t)]]) - log_sum_exp(row, c.vocab);
    max_diff = std::max(max_diff, std::fabs(lp - logp[size_t(t)]));
    spread = std::max(spread, std::fabs(lp - logp[0]));
  }
  std::printf("training vs inference forward over %d positions: max |log-prob difference| %.2e\n", T, max_diff);
  EXPECT_LT(max_diff, 1e-4);
  EXPECT_GT(spread, 0.1) << "the log-probs should vary along the sequence";
}

// softmax(logits / T) at T = 1 must equal the default, and at T != 1 must differ from it and
// match the log-softmax of the scaled logits computed here from the T = 1 logits.
TEST(TrainGradients, TemperatureScalesTheLogits) {
  TrainConfig c{.vocab = 11, .dim = 8, .n_layers = 1, .n_heads = 2, .n_kv_heads = 1, .ffn = 12, .ctx = 8, .tied = true};
  TrainModel m(c);
  Rng rng(5);
  for (float& p : m.params) p = 0.5f * float(rng.normal());
  TrainBatch b{.B = 1, .T = 4, .tokens = {1, 2, 3, 4}, .targets = {2, 3, 4, 5}};
  Activations a;
  std::vector<float> logp1, logpt;
  forward_train(m, b, a, logp1);
  // Recover the T = 1 logits up to a per-row constant from the softmax: log p.
  std::vector<float> logits(a.logits.size());
  for (size_t i = 0; i < logits.size(); ++i) logits[i] = std::log(a.logits[i]);
  forward_train(m, b, a, logpt, 0.5f);
  for (int t = 0; t < 4; ++t) {
    double mx = -1e30, s = 0;
    for (int j = 0; j < 11; ++j) mx = std::max(mx, double(logits[size_t(t * 11 + j)]) / 0.5);
    for (int j = 0; j < 11; ++j) s += std::exp(double(logits[size_t(t * 11 + j)]) / 0.5 - mx);
    const double want = double(logits[size_t(t * 11 + b.targets[size_t(t)])]) / 0.5 - mx - std::log(s);
    EXPECT_NEAR(logpt[size_t(t)], want, 1e-4) << t;
    EXPECT_GT(std::fabs(logpt[size_t(t)] - logp1[size_t(t)]), 1e-3) << t;
  }
}

}  // namespace
}  // namespace ponder

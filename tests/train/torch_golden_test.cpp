// The training forward, backward and AdamW against PyTorch: tests/golden/train_*.json, written by
// tools/torch_reference.py (float64 PyTorch): softmax of the logits, the loss, every gradient, and
// the losses and gradient norms of six AdamW steps with clipping.
#include <cmath>
#include <fstream>
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>
#include <omp.h>

#include "core/error.h"
#include "train/adamw.h"
#include "train/forward_train.h"

namespace ponder {
namespace {

struct Golden {
  nlohmann::json j;
  TrainConfig config;
  TrainBatch batch;
};

Golden load(const std::string& name) {
  std::ifstream in(std::string(PONDER_SOURCE_DIR) + "/tests/golden/train_" + name + ".json");
  Golden g{.j = nlohmann::json::parse(in)};
  const auto& c = g.j["config"];
  g.config = TrainConfig{.vocab = c["vocab"], .dim = c["dim"], .n_layers = c["n_layers"], .n_heads = c["n_heads"],
                         .n_kv_heads = c["n_kv_heads"], .ffn = c["ffn"], .ctx = 64, .rope_base = c["rope_base"],
                         .rms_eps = c["rms_eps"], .tied = c["tied"], .arch = c.value("arch", std::string("llama"))};
  g.batch = TrainBatch{.B = g.j["B"], .T = g.j["T"], .tokens = g.j["tokens"], .targets = g.j["targets"]};
  return g;
}

TrainModel model_of(const Golden& g) {
  TrainModel m(g.config);
  for (const ParamTensor& t : m.layout.tensors) {
    const auto values = g.j["params"][t.name].get<std::vector<float>>();
    EXPECT_EQ(values.size(), t.size) << t.name;
    std::copy(values.begin(), values.end(), m.params.begin() + ptrdiff_t(t.offset));
  }
  return m;
}

std::vector<float> ce_weights(const TrainBatch& b) {
  int count = 0;
  for (int32_t t : b.targets) count += t >= 0;
  std::vector<float> w(b.targets.size());
  for (size_t i = 0; i < w.size(); ++i) w[i] = b.targets[i] >= 0 ? -1.0f / float(count) : 0.0f;
  return w;
}

// Every gradient of `layout`'s tensors against PyTorch's, within 1e-5 of each tensor's largest;
// returns the worst error relative to it.
double expect_gradients(const Golden& g, const ParamLayout& layout, const std::vector<float>& grads) {
  double worst = 0;
  for (const ParamTensor& t : layout.tensors) {
    const auto want = g.j["grads"][t.name].get<std::vector<double>>();
    double scale = 0;
    for (double x : want) scale = std::max(scale, std::fabs(x));
    for (size_t i = 0; i < t.size; ++i) {
      const double err = std::fabs(grads[t.offset + i] - want[i]);
      worst = std::max(worst, err / scale);
      if (err > 1e-5 * scale + 1e-7) {
        ADD_FAILURE() << t.name << "[" << i << "]: " << grads[t.offset + i] << ", PyTorch " << want[i];
        return worst;
      }
    }
  }
  return worst;
}

class TorchGolden : public ::testing::TestWithParam<const char*> {};

TEST_P(TorchGolden, LogitsLossAndEveryGradient) {
  const Golden g = load(GetParam());
  const TrainModel m = model_of(g);
  Activations a;
  std::vector<float> logp, grads;
  const double loss = forward_train(m, g.batch, a, logp);
  EXPECT_NEAR(loss, g.j["loss"].get<double>(), 1e-5);
  const auto logits = g.j["logits"].get<std::vector<double>>();
  const int V = g.config.vocab;
  double max_p_err = 0;
  for (size_t r = 0; r < logits.size() / size_t(V); ++r) {  // forward keeps softmax(logits)
    double mx = -1e300, s = 0;
    for (int j = 0; j < V; ++j) mx = std::max(mx, logits[r * V + j]);
    for (int j = 0; j < V; ++j) s += std::exp(logits[r * V + j] - mx);
    for (int j = 0; j < V; ++j) max_p_err = std::max(max_p_err, std::fabs(std::exp(logits[r * V + j] - mx) / s - a.logits[r * V + j]));
  }
  EXPECT_LT(max_p_err, 1e-6);
  backward_train(m, g.batch, a, ce_weights(g.batch), grads);
  const double worst = expect_gradients(g, m.layout, grads);
  std::printf("%s: loss %.7f (torch %.7f), softmax max error %.2e, gradients max error %.2e of each tensor's largest\n",
              GetParam(), loss, g.j["loss"].get<double>(), max_p_err, worst);
}

TEST_P(TorchGolden, AdamWStepsMatchPyTorch) {
  const Golden g = load(GetParam());
  TrainModel m = model_of(g);
  const auto& o = g.j["adamw"];
  const AdamWOptions opt{.lr = o["lr"], .beta1 = o["beta1"], .beta2 = o["beta2"], .eps = o["eps"],
                         .weight_decay = o["weight_decay"], .max_grad_norm = o["max_grad_norm"]};
  AdamWState state;
  Activations a;
  std::vector<float> logp, grads;
  const auto losses = o["losses"].get<std::vector<double>>();
  const auto norms = o["grad_norms"].get<std::vector<double>>();
  for (size_t s = 0; s < losses.size(); ++s) {
    const double loss = forward_train(m, g.batch, a, logp);
    EXPECT_NEAR(loss, losses[s], 2e-5 * std::fabs(losses[s])) << "step " << s;
    grads.assign(m.params.size(), 0.0f);
    backward_train(m, g.batch, a, ce_weights(g.batch), grads);
    const double norm = clip_grad_norm(grads, opt.max_grad_norm);
    EXPECT_NEAR(norm, norms[s], 1e-4 * norms[s]) << "step " << s;
    adamw_step(m, grads, state, opt, opt.lr);
  }
  EXPECT_NEAR(forward_train(m, g.batch, a, logp), o["final_loss"].get<double>(), 2e-5 * o["final_loss"].get<double>());
}

INSTANTIATE_TEST_SUITE_P(Models, TorchGolden, ::testing::Values("untied", "tied", "qwen2"));

TEST(LrSchedule, WarmupThenCosine) {
  const LrSchedule s{.lr = 1.0f, .min_lr = 0.1f, .warmup_steps = 4, .total_steps = 14};
  EXPECT_FLOAT_EQ(s.at(0), 0.25f);
  EXPECT_FLOAT_EQ(s.at(3), 1.0f);
  EXPECT_FLOAT_EQ(s.at(4), 1.0f);
  EXPECT_NEAR(s.at(9), 0.55f, 1e-6);  // halfway: (1 + 0.1) / 2
  EXPECT_NEAR(s.at(14), 0.1f, 1e-6);
  EXPECT_NEAR(s.at(100), 0.1f, 1e-6);
}

TEST(ClipGradNorm, ScalesToTheMaximum) {
  std::vector<float> g = {3, 4};  // norm 5
  EXPECT_NEAR(clip_grad_norm(g, 1.0), 5.0, 1e-9);
  EXPECT_NEAR(g[0], 0.6, 1e-6);
  EXPECT_NEAR(g[1], 0.8, 1e-6);
  std::vector<float> small = {0.3f, 0.4f};
  clip_grad_norm(small, 1.0);
  EXPECT_EQ(small[0], 0.3f);  // under the maximum: unchanged
}

// Over many chunks and threads: the norm of a long-double sum, and the same bits (norm and scaled
// gradients) with 1 and 2 threads.
TEST(ClipGradNorm, LongVectorsAnyThreadCount) {
  std::vector<float> g(300007);
  long double sq = 0;
  for (size_t i = 0; i < g.size(); ++i) {
    g[i] = float(std::sin(double(i) * 0.37) * (i % 7 == 0 ? 1e3 : 1e-2));
    sq += (long double)g[i] * g[i];
  }
  std::vector<float> one = g, two = g;
  omp_set_num_threads(1);
  const double n1 = clip_grad_norm(one, 1.0);
  omp_set_num_threads(2);
  const double n2 = clip_grad_norm(two, 1.0);
  EXPECT_NEAR(n1, double(std::sqrt(sq)), 1e-12 * n1);
  EXPECT_EQ(n1, n2);
  EXPECT_TRUE(one == two);
  EXPECT_NEAR(one[7], double(g[7]) / n1, 1e-6 * std::fabs(one[7]));
}

// The norm is the documented sum: per chunk of 65536 gradients in index order in double, the
// chunks added in order. Exactly that, with 1 and 2 threads, over enough chunks that they run side
// by side in groups (9 whole chunks and a partial one).
TEST(ClipGradNorm, ChunkSumsInTheDocumentedOrder) {
  constexpr size_t kChunk = 1 << 16;
  std::vector<float> g(9 * kChunk + 1234);
  for (size_t i = 0; i < g.size(); ++i) g[i] = float(std::sin(double(i) * 0.0071) * (i % 11 == 0 ? 50.0 : 0.3));
  double total = 0;
  for (size_t c0 = 0; c0 < g.size(); c0 += kChunk) {
    double chunk = 0;
    for (size_t i = c0; i < std::min(g.size(), c0 + kChunk); ++i) chunk += double(g[i]) * double(g[i]);
    total += chunk;
  }
  const int max_threads = omp_get_max_threads();
  for (int threads : {1, 2}) {
    omp_set_num_threads(threads);
    EXPECT_EQ(grad_norm(g), std::sqrt(total)) << threads << " threads";
  }
  omp_set_num_threads(max_threads);
}

// A step's fused clipping (clip_coefficient passed to adamw_step, each gradient scaled as AdamW
// reads it) gives the bits of clipping the buffer first, over two steps; and no clipping when the
// norm is under the maximum or max_norm is 0.
TEST(ClipGradNorm, FusedIntoAdamWGivesTheSameBits) {
  ParamLayout layout;
  layout.tensors.push_back({.name = "w", .shape = {200003}, .offset = 0, .size = 200003, .decay = true});
  layout.tensors.push_back({.name = "b", .shape = {17}, .offset = 200003, .size = 17, .decay = false});
  layout.total = 200020;
  std::vector<float> g(layout.total), p_fused(layout.total), p_first(layout.total);
  for (size_t i = 0; i < g.size(); ++i) {
    g[i] = float(std::cos(double(i) * 0.11) * (i % 5 == 0 ? 30.0 : 0.7));
    p_fused[i] = p_first[i] = float(std::sin(double(i) * 0.03));
  }
  const AdamWOptions opt{.lr = 1e-2f};
  AdamWState fused, first;
  for (int step = 0; step < 2; ++step) {
    const double coef = clip_coefficient(grad_norm(g), opt.max_grad_norm);
    ASSERT_LT(coef, 1.0);
    adamw_step(layout, p_fused, g, fused, opt, opt.lr, coef);
    std::vector<float> clipped = g;
    clip_grad_norm(clipped, opt.max_grad_norm);
    adamw_step(layout, p_first, clipped, first, opt, opt.lr);
    ASSERT_TRUE(p_fused == p_first) << "step " << step;
    ASSERT_TRUE(fused.m == first.m && fused.v == first.v) << "step " << step;
  }
  EXPECT_EQ(clip_coefficient(0.5, 1.0), 1.0);
  EXPECT_EQ(clip_coefficient(50.0, 0.0), 1.0);
  EXPECT_NEAR(clip_coefficient(5.0, 1.0), 0.2, 1e-7);
}

// The update over tensors that start and end inside the chunks AdamW splits its work into, with
// their own decay: bit for bit the formula written out here element by element (torch.optim.AdamW
// in float32), with 1 and 2 threads, scaled and not; a layout that does not tile the parameters
// end to end is refused before anything changes.
TEST(AdamW, EveryElementFollowsTheFormulaAcrossTensorsAndThreads) {
  ParamLayout layout;
  size_t at = 0;
  for (size_t size : {size_t(5), size_t(40000), size_t(16384), size_t(3), size_t(0), size_t(70001)}) {
    layout.tensors.push_back({.name = "t" + std::to_string(layout.tensors.size()), .shape = {int64_t(size)},
                              .offset = at, .size = size, .decay = size % 2 == 1});
    at += size;
  }
  layout.total = at;
  std::vector<float> p0(at), g(at);
  for (size_t i = 0; i < at; ++i) {
    p0[i] = float(std::sin(double(i) * 0.013));
    g[i] = float(std::cos(double(i) * 0.7) * (i % 3 == 0 ? 4.0 : 0.01));
  }
  const AdamWOptions opt{.lr = 3e-3f, .weight_decay = 0.1f};
  const int max_threads = omp_get_max_threads();
  for (double scale : {1.0, 0.37}) {
    std::vector<float> want = p0, m(at, 0.0f), v(at, 0.0f);
    const float step_size = float(double(opt.lr) / (1.0 - double(opt.beta1)));
    const float bc2f = float(std::sqrt(1.0 - double(opt.beta2)));
    for (const ParamTensor& t : layout.tensors)
      for (size_t i = t.offset; i < t.offset + t.size; ++i) {
        const float gi = scale != 1.0 ? float(double(g[i]) * scale) : g[i];
        const float decay = t.decay ? 1.0f - opt.lr * opt.weight_decay : 1.0f;
        m[i] = opt.beta1 * m[i] + (1.0f - opt.beta1) * gi;
        v[i] = opt.beta2 * v[i] + (1.0f - opt.beta2) * gi * gi;
        want[i] = want[i] * decay - step_size * m[i] / (std::sqrt(v[i]) / bc2f + opt.eps);
      }
    for (int threads : {1, 2}) {
      omp_set_num_threads(threads);
      std::vector<float> p = p0;
      AdamWState state;
      adamw_step(layout, p, g, state, opt, opt.lr, scale);
      EXPECT_TRUE(p == want && state.m == m && state.v == v) << "scale " << scale << ", " << threads << " threads";
    }
  }
  omp_set_num_threads(max_threads);
  ParamLayout gap = layout;
  gap.tensors[2].offset += 1;
  std::vector<float> p = p0;
  AdamWState state;
  EXPECT_THROW(adamw_step(gap, p, g, state, opt, opt.lr), InvalidArgument);
  EXPECT_TRUE(p == p0 && state.step == 0);
  ParamLayout short_layout = layout;
  short_layout.tensors.pop_back();
  EXPECT_THROW(adamw_step(short_layout, p, g, state, opt, opt.lr), InvalidArgument);
}

}  // namespace
}  // namespace ponder

namespace ponder {
namespace {

// LoRA on every block matrix of the qwen2 model (tools/torch_reference.py, rank 2, alpha 3): the loss
// and the gradient of every adapter parameter against PyTorch's, the base frozen.
TEST(TorchGoldenLora, LossAndEveryAdapterGradient) {
  const Golden g = load("qwen2_lora");
  const TrainModel m = model_of(g);
  const auto& lc = g.j["config"]["lora"];
  LoraAdapters lora(g.config, {.rank = lc["rank"], .alpha = lc["alpha"]});
  for (const ParamTensor& t : lora.layout.tensors) {
    const auto values = g.j["params"][t.name].get<std::vector<float>>();
    ASSERT_EQ(values.size(), t.size) << t.name;
    std::copy(values.begin(), values.end(), lora.params.begin() + ptrdiff_t(t.offset));
  }
  Activations a;
  std::vector<float> logp, grads;
  const double loss = forward_train(m, g.batch, a, logp, 1.0f, &lora);
  EXPECT_NEAR(loss, g.j["loss"].get<double>(), 1e-5);
  backward_train(m, g.batch, a, ce_weights(g.batch), grads, &lora);
  ASSERT_EQ(grads.size(), lora.layout.total);
  const double worst = expect_gradients(g, lora.layout, grads);
  EXPECT_FALSE(g.j["grads"].contains("blk.0.attn_q.weight")) << "PyTorch froze the base too";
  std::printf("qwen2 + LoRA: loss %.7f (torch %.7f), adapter gradients max error %.2e of each tensor's largest\n", loss,
              g.j["loss"].get<double>(), worst);
}

}  // namespace
}  // namespace ponder

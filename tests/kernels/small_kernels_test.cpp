// rmsnorm, rope, softmax, swiglu and attention against float64 computations written here.
#include <cmath>
#include <limits>
#include <gtest/gtest.h>
#include <random>
#include <vector>

#include "core/fp16.h"
#include "kernels/activation.h"
#include "kernels/dot.h"
#include "kernels/attention.h"
#include "kernels/rmsnorm.h"
#include "kernels/rope.h"

namespace ponder {
namespace {

std::vector<float> randn(size_t n, uint32_t seed, float stddev = 1.f) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> nd(0.f, stddev);
  std::vector<float> v(n);
  for (float& x : v) x = nd(rng);
  return v;
}

TEST(RmsNorm, MatchesFloat64) {
  const int T = 3, C = 37;
  const auto x = randn(T * C, 1), w = randn(C, 2);
  std::vector<float> out(T * C);
  rmsnorm_forward(out.data(), x.data(), w.data(), T, C, 1e-5f);
  for (int t = 0; t < T; ++t) {
    double ss = 0;
    for (int i = 0; i < C; ++i) ss += double(x[t * C + i]) * x[t * C + i];
    const double scale = 1.0 / std::sqrt(ss / C + 1e-5);
    for (int i = 0; i < C; ++i) EXPECT_NEAR(out[t * C + i], x[t * C + i] * scale * w[i], 1e-5);
  }
}

TEST(Rope, RotatesTheRightPairsByTheRightAngles) {
  const int H = 2, D = 8, n_rot = 6;
  const float base = 10000.f;
  const int64_t pos = 7;
  std::vector<float> c(n_rot / 2), s(n_rot / 2);
  rope_angles(c.data(), s.data(), pos, n_rot, base);
  for (RopeStyle style : {RopeStyle::Adjacent, RopeStyle::Neox}) {
    const auto x = randn(H * D, 3);
    auto y = x;
    rope_forward(y.data(), H, D, n_rot, c.data(), s.data(), style);
    for (int h = 0; h < H; ++h) {
      for (int i = 0; i < n_rot / 2; ++i) {
        const double theta = double(pos) * std::pow(double(base), -2.0 * i / n_rot);
        const int a = style == RopeStyle::Adjacent ? 2 * i : i;
        const int b = style == RopeStyle::Adjacent ? 2 * i + 1 : i + n_rot / 2;
        const double x0 = x[h * D + a], x1 = x[h * D + b];
        EXPECT_NEAR(y[h * D + a], x0 * std::cos(theta) - x1 * std::sin(theta), 1e-5);
        EXPECT_NEAR(y[h * D + b], x0 * std::sin(theta) + x1 * std::cos(theta), 1e-5);
      }
      for (int i = n_rot; i < D; ++i) EXPECT_EQ(y[h * D + i], x[h * D + i]) << "dims past n_rot stay";
    }
    rope_backward(y.data(), H, D, n_rot, c.data(), s.data(), style);
    for (int i = 0; i < H * D; ++i) EXPECT_NEAR(y[i], x[i], 1e-5) << "backward inverts forward";
  }
}

TEST(Softmax, AndLogSoftmaxMatchFloat64) {
  auto x = randn(50, 4, 3.f);
  std::vector<float> ls(50);
  const double lse = log_softmax(ls.data(), x.data(), 50);
  double ref_lse = 0;
  for (float v : x) ref_lse += std::exp(double(v));
  ref_lse = std::log(ref_lse);
  EXPECT_NEAR(lse, ref_lse, 1e-9);
  auto p = x;
  softmax_forward(p.data(), 50);
  for (int i = 0; i < 50; ++i) {
    EXPECT_NEAR(p[i], std::exp(double(x[i]) - ref_lse), 1e-7);
    EXPECT_NEAR(ls[i], double(x[i]) - ref_lse, 1e-5);
  }
}

// 37 values (vector blocks and a tail): d = p * (d - sum(d * p)) against float64.
TEST(Softmax, BackwardMatchesFloat64) {
  const int n = 37;
  auto p = randn(n, 8, 2.f);
  softmax_forward(p.data(), n);
  const auto d0 = randn(n, 9);
  auto d = d0;
  softmax_backward(d.data(), p.data(), n);
  double dot = 0;
  for (int i = 0; i < n; ++i) dot += double(d0[i]) * p[i];
  for (int i = 0; i < n; ++i) EXPECT_NEAR(d[i], p[i] * (double(d0[i]) - dot), 1e-6) << i;
}

// 37 values: two 16-wide vector blocks and a scalar tail; gates up to about +-30 reach exp's
// clamping on both sides.
TEST(Swiglu, ForwardAndBackwardMatchFloat64) {
  const int n = 37;
  const auto g = randn(n, 5, 10.f), u = randn(n, 6), d = randn(n, 7);
  std::vector<float> out(n), dg(n), du(n);
  swiglu_forward(out.data(), g.data(), u.data(), n);
  swiglu_backward(dg.data(), du.data(), d.data(), g.data(), u.data(), n);
  for (int i = 0; i < n; ++i) {
    const double x = g[i], s = 1 / (1 + std::exp(-x));
    const double want = x * s * u[i];
    EXPECT_NEAR(out[i], want, 1e-6 * (1 + std::fabs(want))) << i;
    EXPECT_NEAR(du[i], d[i] * x * s, 1e-6 * (1 + std::fabs(d[i] * x * s))) << i;
    const double dgw = d[i] * u[i] * s * (1 + x * (1 - s));
    EXPECT_NEAR(dg[i], dgw, 1e-6 * (1 + std::fabs(dgw))) << i;
  }
}

// Attention over a contiguous cache and over the same cache split into blocks of 3 positions.
TEST(Attention, MatchesFloat64AndIgnoresBlockLayout) {
  const int H = 4, Hkv = 2, D = 8, n_ctx = 10, kvd = Hkv * D;
  const auto q = randn(H * D, 7), k = randn(n_ctx * kvd, 8), v = randn(n_ctx * kvd, 9);
  const float scale = 1.f / std::sqrt(float(D));
  std::vector<float> out(H * D), scores(attention_scratch_floats(n_ctx, D, H / Hkv));
  const float* kp[1] = {k.data()};
  const float* vp[1] = {v.data()};
  attention_forward(out.data(), q.data(), KvBlocks{.k = kp, .v = vp, .block_size = n_ctx, .n_ctx = n_ctx}, H, Hkv, D,
                    scale, AttentionOrder::OneToken, scores.data());
  for (int h = 0; h < H; ++h) {
    const int g = h / (H / Hkv);
    std::vector<double> s(n_ctx);
    double mx = -1e300, sum = 0;
    for (int p = 0; p < n_ctx; ++p) {
      double d = 0;
      for (int i = 0; i < D; ++i) d += double(q[h * D + i]) * k[p * kvd + g * D + i];
      s[p] = d * scale;
      mx = std::max(mx, s[p]);
    }
    for (double& x : s) sum += (x = std::exp(x - mx));
    for (int i = 0; i < D; ++i) {
      double o = 0;
      for (int p = 0; p < n_ctx; ++p) o += s[p] / sum * v[p * kvd + g * D + i];
      EXPECT_NEAR(out[h * D + i], o, 1e-5);
    }
  }
  // Blocks of 3 positions (the last one partly used), copied out of the contiguous cache.
  const int bs = 3, nb = (n_ctx + bs - 1) / bs;
  std::vector<std::vector<float>> kb(nb, std::vector<float>(bs * kvd)), vb(nb, std::vector<float>(bs * kvd));
  std::vector<const float*> kptr(nb), vptr(nb);
  for (int p = 0; p < n_ctx; ++p)
    for (int i = 0; i < kvd; ++i) {
      kb[p / bs][(p % bs) * kvd + i] = k[p * kvd + i];
      vb[p / bs][(p % bs) * kvd + i] = v[p * kvd + i];
    }
  for (int b = 0; b < nb; ++b) kptr[b] = kb[b].data(), vptr[b] = vb[b].data();
  std::vector<float> out2(H * D);
  attention_forward(out2.data(), q.data(), KvBlocks{.k = kptr.data(), .v = vptr.data(), .block_size = bs, .n_ctx = n_ctx},
                    H, Hkv, D, scale, AttentionOrder::OneToken, scores.data());
  EXPECT_EQ(out, out2);
}

}  // namespace
}  // namespace ponder

namespace ponder {
namespace {
TEST(LogSumExp, MatchesFloat64OnLongRows) {
  std::vector<float> x(151936);
  std::mt19937 rng(11);
  std::normal_distribution<float> nd(0.f, 4.f);
  for (float& v : x) v = nd(rng);
  double mx = -1e300, s = 0;
  for (float v : x) mx = std::max(mx, double(v));
  for (float v : x) s += std::exp(double(v) - mx);
  EXPECT_NEAR(log_sum_exp(x.data(), int64_t(x.size())), mx + std::log(s), 1e-5);
  const float minus_inf[2] = {-INFINITY, -INFINITY};
  EXPECT_EQ(log_sum_exp(minus_inf, 2), -INFINITY);
}
}  // namespace
}  // namespace ponder

namespace ponder {
namespace {

// The attention output in llama.cpp's two orders, written out here: scores by dot_f32 (its
// one-row dot), softmax_forward, then each output element summed over lanes, position p in lane
// p % L with the lanes past the context holding +0 (llama.cpp's padded positions): L = 64 for
// one query token (ggml_vec_dot_f32: (a[l] + a[l+32]) + (a[l+16] + a[l+48]), then halving),
// L = 16 for a batch of query tokens (tinyBLAS: halving). Bitwise, for a group of 3 query heads
// sharing a KV head and for one head alone, at context lengths on both sides of 16 and 64 and
// past the kernel's tiles of 16 x L positions, across cache blocks of 16 and in one contiguous
// block, for head sizes 64 and 128 (whole 64-element chunks of the SIMD path) and 40 (the
// portable path).
TEST(Attention, WeightedSumFollowsLlamaCppOrderBitwise) {
  const int Hkv = 2, G = 3;
  for (const int D : {64, 128, 40}) {
    for (AttentionOrder order : {AttentionOrder::OneToken, AttentionOrder::Batch})
      for (int n_ctx : {1, 3, 16, 17, 40, 64, 65, 130, 300, 1100})
        for (const bool contiguous : {false, true}) {
          if (D != 64 && n_ctx > 300) continue;  // the long contexts once
          const int kvd = Hkv * D, bs = contiguous ? n_ctx : 16;
          SCOPED_TRACE("D=" + std::to_string(D) + " n_ctx=" + std::to_string(n_ctx) +
                       (order == AttentionOrder::Batch ? " batch" : " one token") + (contiguous ? " contiguous" : ""));
          const auto q = randn(size_t(G) * D, 11), k = randn(size_t(n_ctx) * kvd, 12), v = randn(size_t(n_ctx) * kvd, 13);
          const int nb = (n_ctx + bs - 1) / bs;
          std::vector<const float*> kp(static_cast<size_t>(nb)), vp(static_cast<size_t>(nb));
          for (int b = 0; b < nb; ++b) kp[size_t(b)] = k.data() + size_t(b) * bs * kvd, vp[size_t(b)] = v.data() + size_t(b) * bs * kvd;
          const KvBlocks kv{.k = kp.data(), .v = vp.data(), .block_size = bs, .n_ctx = n_ctx};
          const float scale = 0.125f;
          const int g = 1;  // the second KV head
          std::vector<float> scratch(attention_scratch_floats(n_ctx, D, G)), out(size_t(G) * D), one(D);
          attention_group_forward(out.data(), q.data(), G, kv, g, Hkv, D, scale, order, scratch.data());
          for (int h = 0; h < G; ++h) {
            const float* qh = q.data() + size_t(h) * D;
            attention_head_forward(one.data(), qh, kv, g, Hkv, D, scale, order, scratch.data());
            std::vector<float> p(static_cast<size_t>(n_ctx));
            for (int i = 0; i < n_ctx; ++i) p[size_t(i)] = dot_f32(qh, k.data() + size_t(i) * kvd + g * D, D) * scale;
            softmax_forward(p.data(), n_ctx);
            const int L = order == AttentionOrder::Batch ? 16 : 64;
            for (int d = 0; d < D; ++d) {
              float lane[64] = {};
              for (int i = 0; i < n_ctx; ++i) lane[i % L] = std::fma(p[size_t(i)], v[size_t(i) * kvd + g * D + d], lane[i % L]);
              float s[16];
              for (int l = 0; l < 16; ++l) s[l] = L == 64 ? (lane[l] + lane[l + 32]) + (lane[l + 16] + lane[l + 48]) : lane[l];
              for (int half = 8; half >= 1; half /= 2)
                for (int l = 0; l < half; ++l) s[l] = s[l] + s[l + half];
              ASSERT_EQ(fp32_to_bits(out[size_t(h) * D + d]), fp32_to_bits(s[0])) << "head " << h << " element " << d;
              ASSERT_EQ(fp32_to_bits(one[size_t(d)]), fp32_to_bits(s[0])) << "head " << h << " alone, element " << d;
            }
          }
        }
  }
}

// dot_f32_rows16 (the attention scores, 16 keys at a time) gives dot_f32's bits for each row:
// lengths with and without whole 64-element chunks and a tail, zeros of both signs, infinities.
TEST(DotF32, SixteenRowsGiveEachRowsBits) {
  for (const int64_t n : {1, 5, 40, 64, 80, 128, 200}) {
    const int64_t stride = n + 3;
    auto a = randn(size_t(n), 21), rows = randn(size_t(16 * stride), 22);
    if (n >= 64) {
      a[3] = -0.0f, rows[size_t(2 * stride + 3)] = 0.0f;  // a -0 product
      for (int64_t k = 0; k < n; ++k) rows[size_t(5 * stride + k)] = k == 7 ? -0.0f : 0.0f;  // a row of zeros
      rows[size_t(9 * stride + 10)] = std::numeric_limits<float>::infinity();
    }
    float out[16];
    dot_f32_rows16(a.data(), rows.data(), stride, n, out);
    for (int r = 0; r < 16; ++r)
      EXPECT_EQ(fp32_to_bits(out[r]), fp32_to_bits(dot_f32(a.data(), rows.data() + r * stride, n))) << "n=" << n << " row " << r;
  }
}

}  // namespace
}  // namespace ponder

namespace ponder {
namespace {

// exp_ggml against float64 exp: within 3 ulp over the range softmax and SwiGLU see, exact at 0,
// and llama.cpp's cut-offs (0 below, +inf above).
TEST(ExpGgml, MatchesFloat64WithinThreeUlp) {
  EXPECT_EQ(exp_ggml(0.0f), 1.0f);
  for (float x = -87.0f; x <= 88.0f; x += 0.01234f) {
    const double want = std::exp(double(x));
    const float got = exp_ggml(x);
    const double ulp = std::nextafter(float(want), INFINITY) - float(want);
    ASSERT_LE(std::fabs(got - want), 3 * ulp) << "x=" << x;
  }
  EXPECT_EQ(exp_ggml(-200.0f), 0.0f);
  EXPECT_EQ(exp_ggml(200.0f), INFINITY);
  EXPECT_EQ(exp_ggml(-INFINITY), 0.0f);
  EXPECT_EQ(exp_ggml(INFINITY), INFINITY);
  EXPECT_TRUE(std::isnan(exp_ggml(NAN)));
  // The vector path gives NaN for NaN too (a NaN activation reaches SwiGLU from a corrupt model).
  float v[16];
  for (int i = 0; i < 16; ++i) v[i] = i == 3 ? NAN : float(i);
  exp_shifted(v, 16, 0.0f);
  EXPECT_TRUE(std::isnan(v[3]));
  EXPECT_EQ(v[2], exp_ggml(2.0f));
}

// The vector paths (AVX-512 where the build has it) give exp_ggml's bits per element: every element
// of exp_shifted and softmax, the full 16-element groups of SwiGLU (its tail is libm's exp, as in
// llama.cpp's scalar tail).
TEST(ExpGgml, VectorPathsGiveItsBits) {
  std::mt19937 rng(5);
  std::normal_distribution<float> nd(0.0f, 4.0f);
  const int64_t n = 37;  // two full groups and a tail of 5
  std::vector<float> x(n), gate(n), up(n);
  for (int64_t i = 0; i < n; ++i) x[i] = nd(rng), gate[i] = nd(rng), up[i] = nd(rng);
  std::vector<float> e = x;
  exp_shifted(e.data(), n, 1.5f);
  for (int64_t i = 0; i < n; ++i) ASSERT_EQ(fp32_to_bits(e[i]), fp32_to_bits(exp_ggml(x[i] - 1.5f))) << i;
  std::vector<float> p = x;
  softmax_forward(p.data(), n);
  float mx = x[0];
  for (float v : x) mx = std::max(mx, v);
  double sum = 0;
  for (int64_t i0 = 0; i0 < n; i0 += 16) {
    float g[16] = {};
    for (int j = 0; j < 16 && i0 + j < n; ++j) g[j] = exp_ggml(x[i0 + j] - mx);
    sum += double(halving_sum16(g));
  }
  for (int64_t i = 0; i < n; ++i)
    ASSERT_EQ(fp32_to_bits(p[i]), fp32_to_bits(exp_ggml(x[i] - mx) * float(1.0 / sum))) << i;
  std::vector<float> s(n);
  swiglu_forward(s.data(), gate.data(), up.data(), n);
  for (int64_t i = 0; i < n; ++i) {
    const float ex = i < 32 ? exp_ggml(0.0f - gate[i]) : std::exp(-gate[i]);
    ASSERT_EQ(fp32_to_bits(s[i]), fp32_to_bits(gate[i] / (1.0f + ex) * up[i])) << i;
  }
}

// The vector exp over its whole range, subnormal and overflowing results included (AVX2 takes
// 2^n in two steps there, AVX-512 by scalef; both must round once, as ldexp does).
TEST(ExpGgml, VectorPathMatchesAcrossTheRange) {
  std::vector<float> x;
  for (float v = -140.0f; v <= 140.0f; v += 0.0371f) x.push_back(v);
  for (float v : {-103.97f, -87.34f, -88.73f, 88.72f, 88.73f, 0.0f, -0.0f, 1e-30f, -1e-30f}) x.push_back(v);
  std::vector<float> e = x;
  exp_shifted(e.data(), int64_t(e.size()), 0.0f);
  for (size_t i = 0; i < x.size(); ++i) ASSERT_EQ(fp32_to_bits(e[i]), fp32_to_bits(exp_ggml(x[i]))) << "x=" << x[i];
}

}  // namespace
}  // namespace ponder

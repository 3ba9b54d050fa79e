#include "train/forward_train.h"

#include <algorithm>
#include <cmath>

#include "core/error.h"
#include "core/grow.h"
#include "core/parallel.h"
#include "kernels/activation.h"
#include "kernels/gemm.h"
#include "kernels/rmsnorm.h"
#include "kernels/rope.h"
#include "train/frozen_head.h"

namespace ponder {

namespace {

constexpr double kKeptProbsBytes = 256.0 * (1 << 20);  // see keep_attention_probs
double g_probs_limit_for_testing = -1;                   // set_attention_probs_limit_for_testing
int g_ffn_layout_for_testing = -1;                       // set_ffn_feature_major_for_testing

constexpr int kBlock = kSgemmBlock;
constexpr int kCols = kSgemmTileCols;

}  // namespace

void HeadPanels::pack(const float* x, int64_t ld, int T, int D) {
  D_ = D;
  n_col_panels_ = (T + kCols - 1) / kCols;
  const int n_blocks = (D + kBlock - 1) / kBlock;
  float* dst = sized(panels_, size_t(n_blocks) * n_col_panels_ * kBlock * kCols);
  for (int p = 0; p < n_blocks; ++p)
    for (int j = 0; j < n_col_panels_; ++j)
      sgemm_pack_trans_panel(dst + (size_t(p) * n_col_panels_ + j) * kBlock * kCols,
                             x + size_t(j) * kCols * ld + p * kBlock, ld, std::min(kBlock, D - p * kBlock),
                             std::min(kCols, T - j * kCols));
}

const float* HeadPanels::panel(int p, int j) const {
  return panels_.data() + (size_t(p) * n_col_panels_ + j) * kBlock * kCols;
}

void HeadPanels::times_transposed(int mr, int n, float alpha, const float* A, int64_t lda, float* C,
                                  int64_t ldc) const {
  for (int j = 0; j * kCols < n; ++j)
    for (int p = 0; p * kBlock < D_; ++p)
      sgemm_tile(false, mr, std::min(kCols, n - j * kCols), std::min(kBlock, D_ - p * kBlock), alpha, A + p * kBlock,
                 lda, panel(p, j), kCols, p > 0, C + j * kCols, ldc);
}

void rows_times(int mr, int n, int D, float alpha, const float* A, int64_t lda, const float* Y, int64_t ldy, float* C,
                int64_t ldc) {
  for (int d0 = 0; d0 < D; d0 += kCols)
    for (int k0 = 0; k0 < n; k0 += kBlock)
      sgemm_tile(false, mr, std::min(kCols, D - d0), std::min(kBlock, n - k0), alpha, A + k0, lda,
                 Y + size_t(k0) * ldy + d0, ldy, k0 > 0, C + d0, ldc);
}

void copy_head_rows(float* dst, const float* src, int64_t ld, int T, int D) {
  for (int t = 0; t < T; ++t) std::copy_n(src + size_t(t) * ld, D, dst + size_t(t) * D);
}

void store_head_rows(float* dst, int64_t ld, const float* src, int T, int D) {
  for (int t = 0; t < T; ++t) std::copy_n(src + size_t(t) * D, D, dst + size_t(t) * ld);
}

bool ffn_feature_major(int64_t N, int F) {
  return g_ffn_layout_for_testing >= 0 ? g_ffn_layout_for_testing == 1 : int64_t(F) > N;
}

void set_ffn_feature_major_for_testing(int mode) { g_ffn_layout_for_testing = mode; }

bool keep_attention_probs(int64_t B, int H, int64_t T, int L) {
  const double limit = g_probs_limit_for_testing >= 0 ? g_probs_limit_for_testing : kKeptProbsBytes;
  return double(B) * H * double(T) * double(T) * L * sizeof(float) <= limit;
}

void set_attention_probs_limit_for_testing(double bytes) { g_probs_limit_for_testing = bytes; }

void attention_probs_block(float* P, int64_t ld, const float* q, int64_t qd, const float* k, int64_t kvd, int D,
                           int r0, int r1, float scale) {
  sgemm(false, true, r1 - r0, r1, D, scale, q + size_t(r0) * qd, qd, k, kvd, 0.0f, P, ld);
  for (int t = r0; t < r1; ++t) {
    float* row = P + size_t(t - r0) * ld;
    softmax_forward(row, t + 1);
    std::fill(row + t + 1, row + r1, 0.0f);
  }
}

double forward_train(const TrainModel& m, const TrainBatch& batch, Activations& a, std::vector<float>& logp,
                     float temperature, const LoraAdapters* lora) {
  const TrainConfig& c = m.config;
  const int B = batch.B, T = batch.T, C = c.dim, F = c.ffn, V = c.vocab, L = c.n_layers;
  const int H = c.n_heads, Hkv = c.n_kv_heads, D = c.head_dim(), qd = c.q_dim(), kvd = c.kv_dim();
  const int64_t N = int64_t(B) * T;
  if (B <= 0 || T <= 0 || batch.tokens.size() != size_t(N) || batch.targets.size() != size_t(N))
    throw InvalidArgument("training batch: tokens and targets must both hold B x T ids");
  if (T > c.ctx) throw InvalidArgument("training batch: sequence length " + std::to_string(T) + " exceeds the context " + std::to_string(c.ctx));
  for (size_t i = 0; i < size_t(N); ++i)
    if (batch.tokens[i] < 0 || batch.tokens[i] >= V || batch.targets[i] < -1 || batch.targets[i] >= V)
      throw InvalidArgument("training batch: token id out of range at position " + std::to_string(i));
  if (!(temperature > 0)) throw InvalidArgument("training forward: temperature must be > 0");
  a.B = B;
  a.T = T;
  a.temperature = temperature;
  ParamView w = view_params(c, m.layout, const_cast<float*>(m.params.data()));
  const size_t NC = size_t(N) * C, NF = size_t(N) * F;
  float* x_in = sized(a.x_in, NC * L);
  float* xn1 = sized(a.xn1, NC * L);
  float* rstd1 = sized(a.rstd1, size_t(N) * L);
  float* q = sized(a.q, size_t(N) * qd * L);
  float* k = sized(a.k, size_t(N) * kvd * L);
  float* v = sized(a.v, size_t(N) * kvd * L);
  a.probs_kept = keep_attention_probs(B, H, T, L);
  float* probs = a.probs_kept ? sized(a.probs, size_t(B) * H * T * T * L) : nullptr;
  float* att = sized(a.att, size_t(N) * qd * L);
  float* x_mid = sized(a.x_mid, NC * L);
  float* xn2 = sized(a.xn2, NC * L);
  float* rstd2 = sized(a.rstd2, size_t(N) * L);
  float* gate = sized(a.gate, NF * L);
  float* up = sized(a.up, NF * L);
  float* hb = sized(a.h, NF * L);
  a.ffn_t = ffn_feature_major(N, F);
  float* ffn_fm = a.ffn_t ? sized(a.ffn_fm, 2 * NF) : nullptr;
  float* x = sized(a.x_final, NC);
  float* xnf = sized(a.xnf, NC);
  float* rstdf = sized(a.rstdf, size_t(N));
  float* rc = sized(a.rope_cos, size_t(T) * D / 2);
  float* rs = sized(a.rope_sin, size_t(T) * D / 2);
  for (int t = 0; t < T; ++t) rope_angles(rc + t * D / 2, rs + t * D / 2, t, D, c.rope_base);
  const float scale = 1.0f / std::sqrt(float(D));
  const RopeStyle rope = c.rope_style();
  // A block matrix as f32 (a frozen base's dequantized into scratch; use it before the next).
  auto W = [&](int l, int which, const float* param) { return block_matrix(m, param, l, which, a.frozen_w); };
  // y (N, out) = x W^T, plus s (x A^T) B^T for an adapted matrix (x A^T kept for backward) as sgemm's
  // low-rank term, in the same pass over y. transposed: y^T (out, N) = W x^T (+ s B (x A^T)^T),
  // the same products per element (ffn_feature_major's gate and up).
  const int r = lora ? lora->config.rank : 0;
  float* lora_u = sized(a.lora_u, size_t(N) * r * kLoraTargets * L);
  auto project = [&](int l, LoraTarget t, float* y, const float* x, const float* w, int64_t in, int64_t out,
                     bool transposed = false) {
    const float* lhs = transposed ? w : x;
    const float* rhs = transposed ? x : w;
    const int64_t rows = transposed ? out : N, cols = transposed ? N : out;
    const float* A = lora ? lora->a(l, t) : nullptr;
    if (!A) return sgemm(false, true, rows, cols, in, 1.0f, lhs, in, rhs, in, 0.0f, y, cols);
    float* u = lora_u + (size_t(l) * kLoraTargets + size_t(t)) * size_t(N) * r;
    sgemm(false, true, N, r, in, 1.0f, x, in, A, in, 0.0f, u, r);
    const float* B = lora->b(l, t);
    sgemm(false, true, rows, cols, in, 1.0f, lhs, in, rhs, in, 0.0f, y, cols,
          LowRankTerm{.alpha = lora->config.scale(), .U = transposed ? B : u, .ldu = r, .trans_v = true,
                      .V = transposed ? u : B, .ldv = r, .rank = r});
  };

  // Embedding rows (a frozen base's dequantized row by row) as layer 0's input. The residual
  // stream is written once per sum: x_mid = x_in + attention, the next layer's x_in (x_final after
  // the last) = x_mid + FFN.
  float* x0 = L > 0 ? x_in : x;
#pragma omp parallel for schedule(static)
  for (int64_t i = 0; i < N; ++i) {
    const int64_t id = batch.tokens[size_t(i)];
    if (w.token_embd)
      std::copy_n(w.token_embd + id * C, C, x0 + i * C);
    else
      dequantize_row(x0 + i * C, m.frozen->token_embd, id);
  }

  for (int l = 0; l < L; ++l) {
    const LayerView& lw = w.layers[size_t(l)];
    float* xi = x_in + NC * l;
    float* n1 = xn1 + NC * l;
    float* r1 = rstd1 + size_t(N) * l;
    float* ql = q + size_t(N) * qd * l;
    float* kl = k + size_t(N) * kvd * l;
    float* vl = v + size_t(N) * kvd * l;
    float* al = att + size_t(N) * qd * l;
    float* pl = probs ? probs + size_t(B) * H * T * T * l : nullptr;
#pragma omp parallel for schedule(static)
    for (int64_t i = 0; i < N; ++i) rmsnorm_forward(n1 + i * C, r1 + i, xi + i * C, lw.attn_norm, 1, C, c.rms_eps);
    project(l, LoraTarget::Q, ql, n1, W(l, 0, lw.wq), C, qd);
    project(l, LoraTarget::K, kl, n1, W(l, 1, lw.wk), C, kvd);
    project(l, LoraTarget::V, vl, n1, W(l, 2, lw.wv), C, kvd);
    // q and k are stored after the bias and the rotation (what attention reads); v after its bias.
#pragma omp parallel for schedule(static)
    for (int64_t i = 0; i < N; ++i) {
      if (lw.bq) {
        for (int j = 0; j < qd; ++j) ql[i * qd + j] += lw.bq[j];
        for (int j = 0; j < kvd; ++j) kl[i * kvd + j] += lw.bk[j];
        for (int j = 0; j < kvd; ++j) vl[i * kvd + j] += lw.bv[j];
      }
      const int t = int(i % T);
      rope_forward(ql + i * qd, H, D, D, rc + t * D / 2, rs + t * D / 2, rope);
      rope_forward(kl + i * kvd, Hkv, D, D, rc + t * D / 2, rs + t * D / 2, rope);
    }
    // Causal attention per (sequence, head) in tiles of kSgemmTileRows query rows t0..t1:
    // S = Q K^T * scale against keys 0..t1 only, P = softmax over t' <= t, O = P V, through sgemm's
    // register tile on rows that stay in this core's cache (K^T packed once per head, Q's and V's
    // rows read from contiguous copies, copy_head_rows). Each element is sgemm's chain (S over the
    // head dimension, O over the keys in blocks of 256, where the zeros right of t add nothing), so
    // P has attention_probs_block's bits and O those of one product over a whole block.
    ParallelErrors errors;  // the scratch allocation can throw; never out of the region
#pragma omp parallel for collapse(2) schedule(dynamic)
    for (int b = 0; b < B; ++b)
      for (int hh = 0; hh < H; ++hh) errors.run([&] {
        constexpr int kRows = kSgemmTileRows;
        const int g = hh / (H / Hkv);
        thread_local HeadPanels kt;  // K^T
        thread_local std::vector<float> s_rows, head_q, head_v;  // S rows when not kept; Q and V of the head
        kt.pack(kl + size_t(b) * T * kvd + g * D, kvd, T, D);
        float* Q = sized(head_q, size_t(T) * D);
        float* Vv = sized(head_v, size_t(T) * D);
        copy_head_rows(Q, ql + size_t(b) * T * qd + hh * D, qd, T, D);
        copy_head_rows(Vv, vl + size_t(b) * T * kvd + g * D, kvd, T, D);
        float* O = al + size_t(b) * T * qd + hh * D;
        for (int t0 = 0; t0 < T; t0 += kRows) {
          const int mr = std::min(kRows, T - t0), n_keys = t0 + mr;
          // Kept: P's rows in place, zeros up to the end of their kAttnRows block (backward reads
          // the blocks); right of that unwritten.
          float* S = pl ? pl + ((size_t(b) * H + hh) * T + t0) * T : sized(s_rows, size_t(kRows) * T);
          kt.times_transposed(mr, n_keys, scale, Q + size_t(t0) * D, D, S, T);
          for (int t = t0; t < t0 + mr; ++t) {
            float* row = S + size_t(t - t0) * T;
            softmax_forward(row, t + 1);
            const int end = pl ? std::max(n_keys, std::min(T, (t / kAttnRows + 1) * kAttnRows)) : n_keys;
            std::fill(row + t + 1, row + end, 0.0f);
          }
          rows_times(mr, n_keys, D, 1.0f, S, T, Vv, D, O + size_t(t0) * qd, qd);
        }
      });
    errors.rethrow();
    float* y = sized(a.dx, NC);  // scratch
    project(l, LoraTarget::O, y, al, W(l, 3, lw.wo), qd, C);
    float* xm = x_mid + NC * l;
    float* n2 = xn2 + NC * l;
    float* r2 = rstd2 + size_t(N) * l;
#pragma omp parallel for schedule(static)
    for (int64_t i = 0; i < N; ++i) {
      for (int j = 0; j < C; ++j) xm[i * C + j] = xi[i * C + j] + y[i * C + j];
      rmsnorm_forward(n2 + i * C, r2 + i, xm + i * C, lw.ffn_norm, 1, C, c.rms_eps);
    }
    float* gl = gate + NF * l;
    float* ul = up + NF * l;
    float* hl = hb + NF * l;
    float* x_out = l + 1 < L ? x_in + NC * (l + 1) : x;
    if (a.ffn_t) {  // gate^T and up^T into scratch, then token-major tiles, SwiGLU on each
      float* gT = ffn_fm;
      float* uT = ffn_fm + NF;
      project(l, LoraTarget::Gate, gT, n2, W(l, 4, lw.w_gate), C, F, true);
      project(l, LoraTarget::Up, uT, n2, W(l, 5, lw.w_up), C, F, true);
      const int64_t n_ft = (F + kFfnCols - 1) / kFfnCols;
#pragma omp parallel for schedule(static)
      for (int64_t tile = 0; tile < (N + kFfnRows - 1) / kFfnRows * n_ft; ++tile) {
        const int64_t t0 = tile / n_ft * kFfnRows, f0 = tile % n_ft * kFfnCols;
        const int64_t n = std::min<int64_t>(kFfnRows, N - t0), nf = std::min<int64_t>(kFfnCols, F - f0);
        transpose_floats(gl + t0 * F + f0, F, gT + f0 * N + t0, N, nf, n);
        transpose_floats(ul + t0 * F + f0, F, uT + f0 * N + t0, N, nf, n);
        for (int64_t i = t0 * F + f0; i < (t0 + n) * F; i += F) swiglu_forward(hl + i, gl + i, ul + i, nf);
      }
    } else {
      project(l, LoraTarget::Gate, gl, n2, W(l, 4, lw.w_gate), C, F);
      project(l, LoraTarget::Up, ul, n2, W(l, 5, lw.w_up), C, F);
#pragma omp parallel for schedule(static)
      for (int64_t i = 0; i < N; ++i) swiglu_forward(hl + i * F, gl + i * F, ul + i * F, F);
    }
    project(l, LoraTarget::Down, y, hl, W(l, 6, lw.w_down), F, C);
#pragma omp parallel for schedule(static)
    for (int64_t i = 0; i < int64_t(NC); ++i) x_out[i] = xm[i] + y[i];
  }

#pragma omp parallel for schedule(static)
  for (int64_t i = 0; i < N; ++i) rmsnorm_forward(xnf + i * C, rstdf + i, x + i * C, w.output_norm, 1, C, c.rms_eps);
  logp.assign(size_t(N), 0.0f);
  a.head_frozen = lora != nullptr || !w.output;  // no gradient reaches the head
  if (a.head_frozen) {
    // Without adapters (a reference model's log-probs) nothing will be trained: no mean.
    frozen_head_forward(m, w.output, xnf, batch.targets, N, temperature, logp.data(), a.head, lora != nullptr);
  } else {
    // logits (N, V) = xnf W_out^T / temperature, then their softmax (kept for backward).
    // A large vocabulary in pieces of kHeadPiece words side by side (the same bits as one product:
    // sgemm's are per element, whatever the cut).
    float* logits = sized(a.logits, size_t(N) * V);
    const int64_t piece = V >= 8 * kHeadPiece ? kHeadPiece : V;
    ParallelErrors errors;
#pragma omp parallel for schedule(dynamic, 1) if (piece < V)
    for (int64_t v0 = 0; v0 < V; v0 += piece)
      errors.run([&] {
        sgemm(false, true, N, std::min(piece, V - v0), C, 1.0f, xnf, C, w.output + v0 * C, C, 0.0f, logits + v0, V);
      });
    errors.rethrow();
    if (temperature != 1.0f) {
      const float inv = 1.0f / temperature;
#pragma omp parallel for schedule(static)
      for (int64_t i = 0; i < N * V; ++i) logits[i] *= inv;
    }
#pragma omp parallel for schedule(static)
    for (int64_t i = 0; i < N; ++i) {
      float* row = logits + i * V;
      const double lse = log_sum_exp(row, V);
      const int32_t tgt = batch.targets[size_t(i)];
      if (tgt >= 0) logp[size_t(i)] = float(double(row[tgt]) - lse);
      // Keep the softmax: exp(logit - max) vectorized, times exp(max - lse) = 1 / sum.
      const float mx = *std::max_element(row, row + V);
      exp_shifted(row, V, mx);
      const float inv_sum = float(std::exp(double(mx) - lse));
      for (int j = 0; j < V; ++j) row[j] *= inv_sum;
    }
  }
  double nll = 0;  // summed in order: the same whatever the threads
  int64_t count = 0;
  for (int64_t i = 0; i < N; ++i)
    if (batch.targets[size_t(i)] >= 0) nll -= logp[size_t(i)], ++count;
  return count > 0 ? nll / double(count) : 0.0;
}

}  // namespace ponder

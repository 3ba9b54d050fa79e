// The backward pass: forward_train read bottom-up.
#include <algorithm>
#include <cmath>
#include <omp.h>

#include "core/error.h"
#include "core/grow.h"
#include "core/parallel.h"
#include "kernels/activation.h"
#include "kernels/gemm.h"
#include "kernels/rmsnorm.h"
#include "kernels/rope.h"
#include "train/forward_train.h"
#include "train/frozen_head.h"

namespace ponder {

namespace {

// For y (N, out) = x (N, in) W^T: dx (N, in) (+)= dy W and dW (out, in) += dy^T x (none when dw is
// null: a frozen matrix).
void linear_backward(float* dx, bool accumulate_dx, float* dw, const float* dy, const float* x, const float* w,
                     int64_t N, int64_t in, int64_t out) {
  sgemm(false, false, N, in, out, 1.0f, dy, out, w, in, accumulate_dx ? 1.0f : 0.0f, dx, in);
  if (dw) sgemm(true, false, out, in, N, 1.0f, dy, out, x, in, 1.0f, dw, in);
}

// out (n) += the sum over rows 0..N-1 of each row's contribution, row(i, partial) adding row i's
// into partial (n): rows in fixed chunks, one partial sum per chunk, the chunks added in order, so
// the result does not depend on the threads. out null: the rows still run, their sum is dropped.
template <typename RowFn>
void sum_over_rows(float* out, int n, int64_t N, RowFn row) {
  constexpr int64_t kChunk = 128;
  const int64_t n_chunks = (N + kChunk - 1) / kChunk;
  std::vector<float> partial(size_t(n_chunks) * n, 0.0f);
#pragma omp parallel for schedule(static)
  for (int64_t ch = 0; ch < n_chunks; ++ch)
    for (int64_t i = ch * kChunk; i < std::min(N, (ch + 1) * kChunk); ++i) row(i, partial.data() + ch * n);
  if (!out) return;
  for (int64_t ch = 0; ch < n_chunks; ++ch)
    for (int j = 0; j < n; ++j) out[j] += partial[size_t(ch * n + j)];
}

// dnorm_weight += ..., dx += ... for each row of a norm.
void norm_backward(float* dx, float* dweight, const float* dout, const float* x, const float* weight, const float* rstd,
                   int64_t N, int C) {
  sum_over_rows(dweight, C, N, [&](int64_t i, float* partial) {
    rmsnorm_backward(dx + i * C, partial, dout + i * C, x + i * C, weight, rstd + i, 1, C);
  });
}

// For y (N, n) = ... + bias: dbias (n) += the column sums of dy.
void bias_backward(float* dbias, const float* dy, int64_t N, int n) {
  sum_over_rows(dbias, n, N, [&](int64_t i, float* partial) {
    for (int j = 0; j < n; ++j) partial[j] += dy[i * n + j];
  });
}

}  // namespace

void backward_train(const TrainModel& m, const TrainBatch& batch, Activations& a, std::span<const float> dlogp,
                    std::vector<float>& grads, const LoraAdapters* lora) {
  const TrainConfig& c = m.config;
  const int B = batch.B, T = batch.T, C = c.dim, F = c.ffn, V = c.vocab, L = c.n_layers;
  const int H = c.n_heads, Hkv = c.n_kv_heads, D = c.head_dim(), qd = c.q_dim(), kvd = c.kv_dim();
  const int64_t N = int64_t(B) * T;
  if (a.B != B || a.T != T || dlogp.size() != size_t(N)) throw InvalidArgument("backward_train: run forward_train on this batch first");
  const size_t n_grads = lora ? lora->layout.total : m.layout.total;
  if (grads.size() != n_grads) grads.assign(n_grads, 0.0f);
  ParamView w = view_params(c, m.layout, const_cast<float*>(m.params.data()));
  // With adapters the base is frozen: every pointer of its gradient view is null.
  const ParamView g = lora ? ParamView{.token_embd = nullptr, .layers = std::vector<LayerView>(size_t(L)),
                                       .output_norm = nullptr, .output = nullptr}
                           : view_params(c, m.layout, grads.data());
  // For an adapted matrix (y += s (x A^T) B^T, u = x A^T kept by forward): dB += s dy^T u,
  // du = s dy B, dA += du^T x, dx += du A.
  const int r = lora ? lora->config.rank : 0;
  float* du = sized(a.lora_du, size_t(N) * r);  // d(x A^T)
  // A block matrix as f32 (a frozen base's dequantized into scratch; use it before the next).
  auto W = [&](int l, int which, const float* param) { return block_matrix(m, param, l, which, a.frozen_w); };
  // linear_backward of y = x W^T (+ the adapter's term): the adapter's dB, du and dA first, then
  // dx (+)= dy W + du A with du A as sgemm's low-rank term, in the same pass over dx.
  auto project_backward = [&](int l, LoraTarget t, float* dx, bool accumulate_dx, float* dw, const float* dy,
                              const float* x, const float* w, int64_t in, int64_t out) {
    const float* A = lora ? lora->a(l, t) : nullptr;
    if (!A) return linear_backward(dx, accumulate_dx, dw, dy, x, w, N, in, out);
    const float s = lora->config.scale();
    const float* u = a.lora_u.data() + (size_t(l) * kLoraTargets + size_t(t)) * size_t(N) * r;
    sgemm(true, false, out, r, N, s, dy, out, u, r, 1.0f, lora->b(grads.data(), l, t), r);
    sgemm(false, false, N, r, out, s, dy, out, lora->b(l, t), r, 0.0f, du, r);
    sgemm(true, false, r, in, N, 1.0f, du, r, x, in, 1.0f, lora->a(grads.data(), l, t), in);
    sgemm(false, false, N, in, out, 1.0f, dy, out, w, in, accumulate_dx ? 1.0f : 0.0f, dx, in,
          LowRankTerm{.alpha = 1.0f, .U = du, .ldu = r, .trans_v = false, .V = A, .ldv = in, .rank = r});
    if (dw) sgemm(true, false, out, in, N, 1.0f, dy, out, x, in, 1.0f, dw, in);  // null with adapters (frozen)
  };
  const size_t NC = size_t(N) * C, NF = size_t(N) * F;
  const float scale = 1.0f / std::sqrt(float(D));
  const RopeStyle rope = c.rope_style();

  float* dxn = sized(a.dxn, NC);
  if (a.head_frozen) {
    frozen_head_backward(m, w.output, batch.targets, dlogp, N, a.temperature, a.head, dxn);
  } else {
    // d logp[t] / d logits[t] = (onehot(target) - softmax) / temperature: the logits buffer holds
    // the softmax.
    float* dlogits = a.logits.data();
    const float inv_t = 1.0f / a.temperature;
#pragma omp parallel for schedule(static)
    for (int64_t i = 0; i < N; ++i) {
      float* row = dlogits + i * V;
      const int32_t tgt = batch.targets[size_t(i)];
      const float s = tgt >= 0 ? dlogp[size_t(i)] * inv_t : 0.0f;
      for (int j = 0; j < V; ++j) row[j] = -s * row[j];
      if (tgt >= 0) row[tgt] += s;
    }
    linear_backward(dxn, false, g.output, dlogits, a.xnf.data(), w.output, N, C, V);
  }
  float* dx = sized(a.dx, NC);
  std::fill_n(dx, NC, 0.0f);
  norm_backward(dx, g.output_norm, dxn, a.x_final.data(), w.output_norm, a.rstdf.data(), N, C);

  float* dh = sized(a.dbig, NF);
  float* dg = sized(a.dbig2, NF * 2);
  float* dup = dg + NF;  // d up
  float* datt = sized(a.datt, size_t(N) * qd);
  float* dq = sized(a.dq, size_t(N) * qd);
  float* dk = sized(a.dk, size_t(N) * kvd);
  float* dv = sized(a.dv, size_t(N) * kvd);
  const float* rc = a.rope_cos.data();
  const float* rs = a.rope_sin.data();

  for (int l = L - 1; l >= 0; --l) {
    const LayerView& lw = w.layers[size_t(l)];
    const LayerView& lg = g.layers[size_t(l)];
    const float* xi = a.x_in.data() + NC * l;
    const float* n1 = a.xn1.data() + NC * l;
    const float* r1 = a.rstd1.data() + size_t(N) * l;
    const float* ql = a.q.data() + size_t(N) * qd * l;
    const float* kl = a.k.data() + size_t(N) * kvd * l;
    const float* vl = a.v.data() + size_t(N) * kvd * l;
    const float* al = a.att.data() + size_t(N) * qd * l;
    const float* xm = a.x_mid.data() + NC * l;
    const float* n2 = a.xn2.data() + NC * l;
    const float* r2 = a.rstd2.data() + size_t(N) * l;
    const float* gl = a.gate.data() + NF * l;
    const float* ul = a.up.data() + NF * l;
    const float* hl = a.h.data() + NF * l;

    // FFN: x_out = x_mid + down(silu(gate) * up), dx is d x_out.
    project_backward(l, LoraTarget::Down, dh, false, lg.w_down, dx, hl, W(l, 6, lw.w_down), F, C);
#pragma omp parallel for schedule(static)
    for (int64_t i = 0; i < N; ++i) swiglu_backward(dg + i * F, dup + i * F, dh + i * F, gl + i * F, ul + i * F, F);
    project_backward(l, LoraTarget::Gate, dxn, false, lg.w_gate, dg, n2, W(l, 4, lw.w_gate), C, F);
    project_backward(l, LoraTarget::Up, dxn, true, lg.w_up, dup, n2, W(l, 5, lw.w_up), C, F);
    norm_backward(dx, lg.ffn_norm, dxn, xm, lw.ffn_norm, r2, N, C);  // dx is now d x_mid

    // Attention: x_mid = x_in + wo(att), dx is d x_mid.
    project_backward(l, LoraTarget::O, datt, false, lg.wo, dx, al, W(l, 3, lw.wo), qd, C);
    // Per (sequence, KV head): the heads of the group add into the same dK and dV. dP = dO V^T and
    // dQ = dS K run as sgemm's register tiles of kSgemmTileRows query rows against the keys up to
    // the tile's last row (the same chains as products over the whole block: dS is zero right of
    // t), with V^T packed once per KV head; dV and dK as transposed tiles of keys (trans_tiles).
    // K, Q, dO, dK and dV are read and written as contiguous copies of the head's rows
    // (copy_head_rows); dK and dV start from zeros and are stored once, at the end.
    ParallelErrors errors;  // the scratch allocation can throw; never out of the region
#pragma omp parallel for collapse(2) schedule(dynamic)
    for (int b = 0; b < B; ++b)
      for (int kh = 0; kh < Hkv; ++kh) errors.run([&] {
        constexpr int kRows = kSgemmTileRows, kCols = kSgemmTileCols;
        // dS of one block of query rows (kAttnRows, T), and P when the forward did not keep it
        // (recomputed: the same bits): used at once, so they stay in this core's cache.
        thread_local std::vector<float> p_block, ds_block, head_k, head_q, head_do, head_dk, head_dv;
        thread_local HeadPanels vt;  // V^T
        if (!a.probs_kept) sized(p_block, size_t(kAttnRows) * T);
        float* dSb = sized(ds_block, size_t(kAttnRows) * T);
        const size_t ko = size_t(b) * T * kvd + kh * D;
        const size_t TD = size_t(T) * D;
        float* Kh = sized(head_k, TD);
        float* Qh = sized(head_q, TD);
        float* dOh = sized(head_do, TD);
        float* dKh = sized(head_dk, TD);
        float* dVh = sized(head_dv, TD);
        copy_head_rows(Kh, kl + ko, kvd, T, D);
        std::fill_n(dKh, TD, 0.0f);
        std::fill_n(dVh, TD, 0.0f);
        // out (r1, D) += alpha * X^T Y for X (m, r1) = P or dS of rows r0..r1 (row stride T) and
        // Y (m, D) = dO or Q: per tile of keys i0.., from the first row that sees them (the rows
        // above add zeros: sgemm's chain from there on).
        auto trans_tiles = [&](int r0, int r1, float alpha, const float* X, const float* Y, float* out) {
          static_assert(kAttnRows <= kSgemmBlock);  // one of sgemm's K blocks
          for (int i0 = 0; i0 < r1; i0 += kRows) {
            const int mr = std::min(kRows, r1 - i0), ks = std::max(0, i0 - r0);
            for (int d0 = 0; d0 < D; d0 += kCols)
              sgemm_tile(true, mr, std::min(kCols, D - d0), (r1 - r0) - ks, alpha, X + size_t(ks) * T + i0, T,
                         Y + size_t(ks) * D + d0, D, true, out + size_t(i0) * D + d0, D);
          }
        };
        vt.pack(vl + ko, kvd, T, D);
        for (int hh = kh * (H / Hkv); hh < (kh + 1) * (H / Hkv); ++hh) {
          const size_t qo = size_t(b) * T * qd + hh * D;
          copy_head_rows(Qh, ql + qo, qd, T, D);
          copy_head_rows(dOh, datt + qo, qd, T, D);
          // The causal blocks of the forward: query rows r0..r1 against keys 0..r1.
          for (int r0 = 0; r0 < T; r0 += kAttnRows) {
            const int r1 = std::min(T, r0 + kAttnRows);
            const float* Pb = a.probs_kept ? a.probs.data() + ((size_t(l) * B + b) * H + hh) * T * T + size_t(r0) * T
                                           : p_block.data();
            if (!a.probs_kept) attention_probs_block(p_block.data(), T, Qh, D, Kh, D, D, r0, r1, scale);
            const float* dO = dOh + size_t(r0) * D;
            // dP = dO V^T, dV += P^T dO
            for (int t0 = r0; t0 < r1; t0 += kRows) {
              const int mr = std::min(kRows, r1 - t0);
              vt.times_transposed(mr, t0 + mr, 1.0f, dOh + size_t(t0) * D, D, dSb + size_t(t0 - r0) * T, T);
            }
            trans_tiles(r0, r1, 1.0f, Pb, dO, dVh);
            // dS = P * (dP - rowsum(dP * P)) over t' <= t
            for (int t = r0; t < r1; ++t) {
              float* dr = dSb + size_t(t - r0) * T;
              softmax_backward(dr, Pb + size_t(t - r0) * T, t + 1);
              std::fill(dr + t + 1, dr + r1, 0.0f);
            }
            // dQ = dS K * scale, dK += dS^T Q * scale
            for (int t0 = r0; t0 < r1; t0 += kRows) {
              const int mr = std::min(kRows, r1 - t0);
              rows_times(mr, t0 + mr, D, scale, dSb + size_t(t0 - r0) * T, T, Kh, D, dq + qo + size_t(t0) * qd, qd);
            }
            trans_tiles(r0, r1, scale, dSb, Qh + size_t(r0) * D, dKh);
          }
        }
        store_head_rows(dk + ko, kvd, dKh, T, D);
        store_head_rows(dv + ko, kvd, dVh, T, D);
      });
    errors.rethrow();
#pragma omp parallel for schedule(static)
    for (int64_t i = 0; i < N; ++i) {
      const int t = int(i % T);
      rope_backward(dq + i * qd, H, D, D, rc + t * D / 2, rs + t * D / 2, rope);
      rope_backward(dk + i * kvd, Hkv, D, D, rc + t * D / 2, rs + t * D / 2, rope);
    }
    if (lg.bq) {  // dq, dk, dv are now the gradients of the projections' outputs, biases included
      bias_backward(lg.bq, dq, N, qd);
      bias_backward(lg.bk, dk, N, kvd);
      bias_backward(lg.bv, dv, N, kvd);
    }
    project_backward(l, LoraTarget::Q, dxn, false, lg.wq, dq, n1, W(l, 0, lw.wq), C, qd);
    project_backward(l, LoraTarget::K, dxn, true, lg.wk, dk, n1, W(l, 1, lw.wk), C, kvd);
    project_backward(l, LoraTarget::V, dxn, true, lg.wv, dv, n1, W(l, 2, lw.wv), C, kvd);
    norm_backward(dx, lg.attn_norm, dxn, xi, lw.attn_norm, r1, N, C);  // dx is now d x_in
  }

  // Embedding rows: a scatter-add over the tokens in order (the order of additions fixed), the
  // columns split among the threads.
  if (!g.token_embd) return;  // frozen
  constexpr int kColumns = 64;
#pragma omp parallel for schedule(static)
  for (int j0 = 0; j0 < C; j0 += kColumns)
    for (int64_t i = 0; i < N; ++i) {
      float* row = g.token_embd + int64_t(batch.tokens[size_t(i)]) * C;
      for (int j = j0; j < std::min(C, j0 + kColumns); ++j) row[j] += dx[i * C + j];
    }
}

}  // namespace ponder

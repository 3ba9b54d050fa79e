#include "train/frozen_head.h"

#include <omp.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <utility>

#include "core/error.h"
#include "core/parallel.h"
#include "kernels/activation.h"
#include "kernels/gemm.h"

namespace ponder {

namespace {

// The sum of x (n) in 16 float lanes (vectorizable), the lanes and the tail added in double.
double lane_sum(const float* x, int64_t n) {
  constexpr int kLanes = 16;
  float lane[kLanes] = {};
  int64_t j = 0;
  for (; j + kLanes <= n; j += kLanes)
    for (int k = 0; k < kLanes; ++k) lane[k] += x[j + k];
  double s = 0;
  for (; j < n; ++j) s += x[j];
  for (int k = 0; k < kLanes; ++k) s += lane[k];
  return s;
}

// Vocabulary range g of kFrozenHeadSegments: whole pieces, [v_begin, v_end).
std::pair<int64_t, int64_t> segment(int64_t V, int g) {
  const int64_t pieces = (V + kFrozenHeadPiece - 1) / kFrozenHeadPiece;
  const int64_t g0 = pieces * g / kFrozenHeadSegments, g1 = pieces * (g + 1) / kFrozenHeadSegments;
  return {g0 * kFrozenHeadPiece, std::min(V, g1 * kFrozenHeadPiece)};
}

}  // namespace

double frozen_head_scratch_floats(int64_t N, int64_t C, int threads, bool dequantized) {
  const double G = kFrozenHeadSegments, n = double(N);
  const double per_thread =
      double(std::min(N, kFrozenHeadRows) * kFrozenHeadPiece) + (dequantized ? double(kFrozenHeadPiece * C) : 0);
  return G * n * C + G * n * 3 + n + threads * per_thread;
}

void frozen_head_forward(const TrainModel& m, const float* head, const float* xnf, std::span<const int32_t> targets,
                         int64_t N, float temperature, float* logp, FrozenHeadScratch& s, bool with_mean) {
  const int64_t C = m.config.dim, V = m.config.vocab, G = kFrozenHeadSegments;
  const float inv_t = 1.0f / temperature;
  s.has_mean = false;
  if (with_mean) s.mean.resize(std::max(s.mean.size(), size_t(G * N * C)));
  s.max.resize(std::max(s.max.size(), size_t(G * N)));
  s.sum.resize(std::max(s.sum.size(), size_t(G * N)));
  s.target.resize(std::max(s.target.size(), size_t(N)));
  const int threads = omp_get_max_threads();
  if (s.logits.size() < size_t(threads)) s.logits.resize(size_t(threads)), s.rows.resize(size_t(threads));
  const size_t piece_logits = size_t(std::min(N, kFrozenHeadRows) * kFrozenHeadPiece);
  for (std::vector<float>& l : s.logits) l.resize(std::max(l.size(), piece_logits));
  std::fill_n(s.target.data(), N, 0.0f);

  // Task (range g, positions i0..i1-1): its range's online softmax and partial mean for them.
  const int64_t row_blocks = (N + kFrozenHeadRows - 1) / kFrozenHeadRows;
  ParallelErrors errors;
#pragma omp parallel for schedule(dynamic, 1)
  for (int64_t task = 0; task < G * row_blocks; ++task) {
    errors.run([&] {
      const int g = int(task % G);
      const int64_t i0 = task / G * kFrozenHeadRows, rows = std::min(kFrozenHeadRows, N - i0);
      const auto [va, vb] = segment(V, g);
      float* S = s.logits[size_t(omp_get_thread_num())].data();
      float* mx = s.max.data() + g * N + i0;
      double* sum = s.sum.data() + g * N + i0;
      float* mean = with_mean ? s.mean.data() + (g * N + i0) * C : nullptr;
      const float* x = xnf + i0 * C;
      std::fill_n(mx, rows, -std::numeric_limits<float>::infinity());
      std::fill_n(sum, rows, 0.0);
      for (int64_t v0 = va; v0 < vb; v0 += kFrozenHeadPiece) {
        const int64_t n = std::min(kFrozenHeadPiece, vb - v0);
        const float* w = head_rows(m, head, v0, n, s.rows[size_t(omp_get_thread_num())]);
        // S (rows, n) = x W[v0 : v0 + n]^T / temperature
        sgemm(false, true, rows, n, C, inv_t, x, C, w, C, 0.0f, S, n);
        for (int64_t i = 0; i < rows; ++i) {
          float* row = S + i * n;
          const int32_t t = targets[size_t(i0 + i)];
          if (t >= v0 && t < v0 + n) s.target[size_t(i0 + i)] = row[t - v0];
          const float piece_max = *std::max_element(row, row + n);
          if (piece_max > mx[i]) {  // rescale what the earlier pieces summed to the new max
            if (v0 > va) {
              const float f = std::exp(mx[i] - piece_max);
              sum[i] *= f;
              if (mean)
                for (int64_t j = 0; j < C; ++j) mean[i * C + j] *= f;
            }
            mx[i] = piece_max;
          }
          exp_shifted(row, n, mx[i]);
          sum[i] += lane_sum(row, n);
        }
        // mean (rows, C) (+)= exp(S - max) W[v0 : v0 + n]
        if (mean) sgemm(false, false, rows, C, n, 1.0f, S, n, w, C, v0 == va ? 0.0f : 1.0f, mean, C);
      }
    });
  }
  errors.rethrow();

  // Merge the ranges in order: mean = sum_g e^(max_g - max) mean_g / sum_g e^(max_g - max) sum_g
  // (a range with no pieces, max_g = -inf, adds nothing). Range 0's partial mean becomes the result.
#pragma omp parallel for schedule(static)
  for (int64_t i = 0; i < N; ++i) {
    float mx = s.max[size_t(i)];
    for (int64_t g = 1; g < G; ++g) mx = std::max(mx, s.max[size_t(g * N + i)]);
    float* out = with_mean ? s.mean.data() + i * C : nullptr;
    double total = 0;
    for (int64_t g = 0; g < G; ++g) {
      const float mg = s.max[size_t(g * N + i)];
      const bool empty = mg == -std::numeric_limits<float>::infinity();
      const double f = empty ? 0.0 : std::exp(double(mg) - double(mx));
      total += f * s.sum[size_t(g * N + i)];
      if (!out) continue;
      const float ff = float(f);
      const float* part = s.mean.data() + (g * N + i) * C;
      if (g == 0)
        for (int64_t j = 0; j < C; ++j) out[j] = empty ? 0.0f : ff * part[j];
      else if (!empty)
        for (int64_t j = 0; j < C; ++j) out[j] += ff * part[j];
    }
    logp[i] = targets[size_t(i)] >= 0 ? float(double(s.target[size_t(i)]) - (double(mx) + std::log(total))) : 0.0f;
    if (!out) continue;
    const float inv = float(1.0 / total);
    for (int64_t j = 0; j < C; ++j) out[j] *= inv;
  }
  s.has_mean = with_mean;
}

void frozen_head_backward(const TrainModel& m, const float* head, std::span<const int32_t> targets,
                          std::span<const float> dlogp, int64_t N, float temperature, const FrozenHeadScratch& s,
                          float* dxnf) {
  if (!s.has_mean)
    throw InvalidArgument("frozen head backward: the forward computed log-probs only (no adapters to train)");
  const int64_t C = m.config.dim;
  const float inv_t = 1.0f / temperature;
  ParallelErrors errors;
#pragma omp parallel for schedule(static)
  for (int64_t i = 0; i < N; ++i) {
    errors.run([&] {
      float* d = dxnf + i * C;
      const int32_t t = targets[size_t(i)];
      if (t < 0) {
        std::fill_n(d, C, 0.0f);
        return;
      }
      const float scale = dlogp[size_t(i)] * inv_t;
      const float* mean = s.mean.data() + i * C;
      head_row(m, head, t, d);
      for (int64_t j = 0; j < C; ++j) d[j] = scale * (d[j] - mean[j]);
    });
  }
  errors.rethrow();
}

}  // namespace ponder

// matmul driver, activation packing, the portable reference path, Q8x8 repacking.
#include "kernels/matmul.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <omp.h>

#include "core/cpu.h"
#include "core/error.h"
#include "core/fp16.h"
#include "kernels/dot.h"
#include "kernels/matmul_internal.h"


namespace ponder {

using namespace matmul_detail;

namespace {

constexpr int64_t kTokBlock = 64;  // activation rows kept hot in cache while a thread sweeps its rows

// ---- the portable path: the lane arithmetic of the SIMD tiles, spelled out ----

// llama.cpp's one-row float dot product: 64 lanes over the first K - K % 64 inputs, the fixed
// reduction, then the tail one by one (in double when double_tail, as its F16 dot does).
template <typename Load>
float dot_lanes_portable(int64_t K, bool double_tail, Load load_product_inputs) {
  const int64_t np = K & ~int64_t(63);
  float acc[64] = {};
  float w = 0, x = 0;
  for (int64_t k0 = 0; k0 < np; k0 += 64)
    for (int l = 0; l < 64; ++l) {
      load_product_inputs(k0 + l, w, x);
      acc[l] = std::fma(w, x, acc[l]);
    }
  float sum = reduce_lanes64(acc);
  if (double_tail) {
    double d = sum;
    for (int64_t k = np; k < K; ++k) {
      load_product_inputs(k, w, x);
      d += double(w * x);
    }
    return float(d);
  }
  for (int64_t k = np; k < K; ++k) {
    load_product_inputs(k, w, x);
    sum = std::fma(w, x, sum);
  }
  return sum;
}

// Block b of row r of a Q8_0 matrix in either layout: the signed quants and the scale.
void q8_block(const WeightView& w, int64_t r, int64_t b, int8_t qs[kQ8Block], float& d) {
  if (w.layout == WeightLayout::Q8x8) {
    const auto* g = reinterpret_cast<const BlockQ8x8*>(w.data) + (r / kQ8GroupRows) * (w.n_cols / kQ8Block) + b;
    const int64_t gr = r % kQ8GroupRows;
    for (int i = 0; i < kQ8Block; ++i) qs[i] = int8_t(int(g->qs[i / 4][gr][i % 4]) - 128);
    d = fp16_to_fp32(g->d[gr]);
    return;
  }
  const auto* blk = reinterpret_cast<const BlockQ8_0*>(w.row(r)) + b;
  std::memcpy(qs, blk->qs, kQ8Block);
  d = fp16_to_fp32(blk->d);
}

// The 6-bit scales and mins of the 8 sub-blocks of a Q4_K super-block (get_scale_min_k4), and back.
void q4k_scales_unpack(const uint8_t s[12], uint8_t scale[8], uint8_t min[8]) {
  for (int j = 0; j < 4; ++j) {
    scale[j] = s[j] & 63;
    min[j] = s[j + 4] & 63;
    scale[j + 4] = uint8_t((s[j + 8] & 0x0F) | (s[j] >> 6) << 4);
    min[j + 4] = uint8_t((s[j + 8] >> 4) | (s[j + 4] >> 6) << 4);
  }
}
void q4k_scales_pack(uint8_t s[12], const uint8_t scale[8], const uint8_t min[8]) {
  for (int j = 0; j < 4; ++j) {
    s[j] = uint8_t(scale[j] | (scale[j + 4] >> 4) << 6);
    s[j + 4] = uint8_t(min[j] | (min[j + 4] >> 4) << 6);
    s[j + 8] = uint8_t((scale[j + 4] & 0x0F) | (min[j + 4] & 0x0F) << 4);
  }
}

// Where BlockQ4Kx8 keeps the scale and min of sub-block s of row r (matmul.h), and its 48-byte
// packing of 64 six-bit values.
int q4kx8_scale_index(int s, int r) { return 8 * s + r; }
int q4kx8_min_index(int s, int r) { return 16 * (s / 2) + 2 * r + s % 2; }
void pack6x64(uint8_t out[48], const uint8_t v[64]) {
  for (int i = 0; i < 32; ++i) out[i] = uint8_t((v[i] & 0x0F) | (v[i + 32] & 0x0F) << 4);
  for (int j = 0; j < 16; ++j) {
    out[32 + j] = 0;
    for (int q = 0; q < 4; ++q) out[32 + j] = uint8_t(out[32 + j] | (v[j + 16 * q] >> 4) << (2 * q));
  }
}
uint8_t get6(const uint8_t p[48], int k) {
  return uint8_t(((p[k % 32] >> (4 * (k / 32))) & 0x0F) | ((p[32 + k % 16] >> (2 * (k / 16))) & 3) << 4);
}

// Row r of a repacked quantized matrix (Q4x8, Q5x8, Q4Kx8) back in its GGUF blocks, in a per-thread buffer.
const uint8_t* unpacked_row(const WeightView& w, int64_t r) {
  thread_local std::vector<uint8_t> buf;
  buf.resize(size_t(w.row_bytes()));
  const int64_t gr = r % kQ8GroupRows;
  if (w.layout == WeightLayout::Q4Kx8) {
    const int64_t nb = w.n_cols / kQK_K;
    auto* out = reinterpret_cast<BlockQ4_K*>(buf.data());
    const auto* g = reinterpret_cast<const BlockQ4Kx8*>(w.data) + (r / kQ8GroupRows) * nb;
    for (int64_t b = 0; b < nb; ++b) {
      out[b].d = g[b].d[gr];
      out[b].dmin = g[b].dmin[gr];
      uint8_t scale[8], min[8];
      for (int s = 0; s < 8; ++s) {
        scale[s] = get6(g[b].scales, q4kx8_scale_index(s, int(gr)));
        min[s] = get6(g[b].scales + 48, q4kx8_min_index(s, int(gr)));
      }
      q4k_scales_pack(out[b].scales, scale, min);
      for (int i = 0; i < kQK_K / 2; ++i) out[b].qs[i] = g[b].qs[i / 32][i % 32 / 4][gr][i % 4];
    }
    return buf.data();
  }
  const int64_t nb = w.n_cols / kQK;
  if (w.layout == WeightLayout::Q5x8) {
    auto* out = reinterpret_cast<BlockQ5_0*>(buf.data());
    const auto* g = reinterpret_cast<const BlockQ5x8*>(w.data) + (r / kQ8GroupRows) * nb;
    for (int64_t b = 0; b < nb; ++b) {
      out[b].d = g[b].d[gr];
      uint32_t qh = 0;
      for (int e = 0; e < kQK; ++e) qh |= ((g[b].qh[e / 4] >> (4 * gr + e % 4)) & 1u) << e;
      std::memcpy(out[b].qh, &qh, 4);
      for (int i = 0; i < kQK / 2; ++i) out[b].qs[i] = g[b].qs[i / 4][gr][i % 4];
    }
    return buf.data();
  }
  auto* out = reinterpret_cast<BlockQ4_0*>(buf.data());
  const auto* g = reinterpret_cast<const BlockQ4x8*>(w.data) + (r / kQ8GroupRows) * nb;
  for (int64_t b = 0; b < nb; ++b) {
    out[b].d = g[b].d[gr];
    for (int i = 0; i < kQK / 2; ++i) out[b].qs[i] = g[b].qs[i / 4][gr][i % 4];
  }
  return buf.data();
}

float dot_portable(const WeightView& w, int64_t r, const uint8_t* x, int64_t K, uint8_t shape) {
  switch (w.type) {
    case GgmlType::F32: {
      const auto* wf = reinterpret_cast<const float*>(w.row(r));
      const auto* xf = reinterpret_cast<const float*>(x);
      return dot_lanes_portable(K, false, [&](int64_t k, float& a, float& b) { a = wf[k]; b = xf[k]; });
    }
    case GgmlType::F16:
    case GgmlType::BF16: {
      const bool bf = w.type == GgmlType::BF16;
      const auto* wh = reinterpret_cast<const uint16_t*>(w.row(r));
      const auto* xh = reinterpret_cast<const uint16_t*>(x);
      return dot_lanes_portable(K, !bf, [&](int64_t k, float& a, float& b) {
        a = bf ? bf16_to_fp32(wh[k]) : fp16_to_fp32(wh[k]);
        b = bf ? bf16_to_fp32(xh[k]) : fp16_to_fp32(xh[k]);
      });
    }
    case GgmlType::Q8_0: {
      // Per block 8 exact integer lane sums, each lane accumulated in float across blocks.
      const auto* xb = reinterpret_cast<const ActBlockQ8*>(x);
      float acc[kLanes] = {};
      int8_t wq[kQ8Block];
      float dw = 0;
      for (int64_t b = 0; b < K / kQ8Block; ++b) {
        q8_block(w, r, b, wq, dw);
        const float d = dw * xb[b].d;
        for (int j = 0; j < kLanes; ++j) {
          int32_t s = 0;
          for (int i = 4 * j; i < 4 * j + 4; ++i) s += int32_t(wq[i]) * int32_t(xb[b].qs[i]);
          acc[j] = std::fma(d, float(s), acc[j]);
        }
      }
      return hsum_lanes(acc);
    }
    default: {
      const QuantType* q = quant_type(w.type);
      const QuantDot dot = pick_dot(*q, w.order == DotOrder::Interleaved8, shape);
      return dot(w.layout == WeightLayout::Rows ? w.row(r) : unpacked_row(w, r), x, K);
    }
  }
  return 0;
}

// Rows [n0, n1) of W against every activation row, token blocks outermost so a block of
// activations stays in cache while the thread sweeps its weight rows.
void matmul_rows(float* y, int64_t ldy, const PackedActivations& x, const WeightView& w, int64_t n0, int64_t n1,
                 SimdLevel level) {
  const int64_t T = x.n_rows;
  const int rows = tile_rows(w), toks = tile_toks(w);
  for (int64_t t0 = 0; t0 < T; t0 += kTokBlock) {
    const int64_t t_end = std::min(T, t0 + kTokBlock);
    for (int64_t n = n0; n < n1; n += rows) {
      const int nr = int(std::min<int64_t>(rows, n1 - n));
      for (int64_t t = t0; t < t_end; t += toks) {
        const int nt = int(std::min<int64_t>(toks, t_end - t));
        const TileFn tile = level != SimdLevel::Portable ? simd_tile(w, nt, level) : nullptr;
        if (tile) {
          tile(y + t * ldy + n, ldy, w, n, nr, x, t, nt);
        } else {
          for (int i = 0; i < nt; ++i)
            for (int r = 0; r < nr; ++r) y[(t + i) * ldy + n + r] = dot_portable(w, n + r, x.row(t + i), w.n_cols, x.shapes[size_t(t + i)]);
        }
      }
    }
  }
}

void matmul_impl(float* y, int64_t ldy, const PackedActivations& x, const WeightView& w, SimdLevel level) {
  const int64_t N = w.n_rows;
  const int rows = tile_rows(w);
  const double work = double(N) * double(w.n_cols) * double(x.n_rows);
  if (work < 65536.0 || omp_in_parallel()) {
    matmul_rows(y, ldy, x, w, 0, N, level);
    return;
  }
  // Threads take chunks of whole tiles (so Q8x8 groups are never split) from a shared counter:
  // a thread that is descheduled (another process on the core) holds up one chunk, not half the
  // matrix. Which thread computes a row never changes its arithmetic.
  const int64_t n_tiles = (N + rows - 1) / rows;
  const int64_t chunk = std::max<int64_t>(1, std::min<int64_t>(16, n_tiles / (8 * omp_get_max_threads())));
  const int64_t n_chunks = (n_tiles + chunk - 1) / chunk;
#pragma omp parallel for schedule(dynamic, 1)
  for (int64_t c = 0; c < n_chunks; ++c) {
    const int64_t n0 = c * chunk * rows, n1 = std::min(N, (c + 1) * chunk * rows);
    matmul_rows(y, ldy, x, w, n0, n1, level);
  }
}


}  // namespace

SimdLevel simd_level() {
  static const SimdLevel level = [] {
    if (!PONDER_SIMD) return SimdLevel::Portable;
    const CpuFeatures& c = cpu_features();
    if (c.avx512_kernels()) return SimdLevel::Avx512Vnni;
    if (c.avx2_kernels()) return SimdLevel::Avx2;
    return SimdLevel::Portable;
  }();
  return level;
}

const char* simd_level_name(SimdLevel level) {
  switch (level) {
    case SimdLevel::Avx512Vnni: return "avx512-vnni";
    case SimdLevel::Avx2: return "avx2";
    default: return "portable";
  }
}

const char* matmul_kernel_path(const WeightView& w) {
  const SimdLevel level = simd_level();
  return level != SimdLevel::Portable && simd_tile(w, 1, level) ? simd_level_name(level) : "portable";
}


void convert_row(uint8_t* out, const float* x, int64_t K, GgmlType type) {
  switch (type) {
    case GgmlType::F32: std::memcpy(out, x, size_t(K) * 4); break;
    case GgmlType::F16: {
      auto* h = reinterpret_cast<uint16_t*>(out);
      for (int64_t k = 0; k < K; ++k) h[k] = fp32_to_fp16(x[k]);
      break;
    }
    case GgmlType::BF16: {
      auto* h = reinterpret_cast<uint16_t*>(out);
      for (int64_t k = 0; k < K; ++k) h[k] = fp32_to_bf16(x[k]);
      break;
    }
    case GgmlType::Q8_0: quantize_row_q8_0(reinterpret_cast<BlockQ8_0*>(out), x, K); break;
    default: throw InvalidArgument("convert_row: ponder writes F32, F16, BF16 and Q8_0, not " + ggml_type_name(uint32_t(type)));
  }
}

void pack_activations(PackedActivations& out, const float* x, int64_t T, int64_t K, GgmlType weight_type,
                      std::span<const int32_t> chunks) {
  pack_activations_at(out, x, T, K, weight_type, chunks, simd_level());
}

void pack_activations_at(PackedActivations& out, const float* x, int64_t T, int64_t K, GgmlType weight_type,
                         std::span<const int32_t> chunks, SimdLevel level) {
  if (level > simd_level()) throw InvalidArgument(std::string("pack_activations_at: this CPU has no ") + simd_level_name(level) + " kernels");
  out.type = weight_type;
  out.n_cols = K;
  out.n_rows = T;
  out.shapes.assign(size_t(T), kRowAlone);
  int64_t t0 = 0;
  for (const int32_t n : chunks) {
    if (n < 0 || t0 + n > T) throw InvalidArgument("pack_activations: chunks sum past the " + std::to_string(T) + " rows");
    for (int64_t i = 0; i < n; ++i) out.shapes[size_t(t0 + i)] = row_shape(i, n);
    t0 += n;
  }
  if (!chunks.empty() && t0 != T)
    throw InvalidArgument("pack_activations: chunks sum to " + std::to_string(t0) + ", not the " + std::to_string(T) + " rows");
  const QuantType* q = quant_type(weight_type);
  out.row_bytes = q ? activation_row_bytes(q->partner, K) : ggml_row_size(weight_type, K);
  const size_t need = size_t(T * out.row_bytes);
  if (out.data.size() < need) out.data.resize(need);
#pragma omp parallel for schedule(static) if (T * K >= (1 << 16) && !omp_in_parallel())
  for (int64_t t = 0; t < T; ++t) {
    uint8_t* dst = out.data.data() + t * out.row_bytes;
    if (q) {
      if (level == SimdLevel::Portable || !simd_quantize_activation_row(dst, x + t * K, K, q->partner, level))
        quantize_activation_row(dst, x + t * K, K, q->partner);
    }
    else
      convert_row(dst, x + t * K, K, weight_type);
  }
}

std::vector<uint8_t> repack_q4x8(const WeightView& w) {
  const int64_t nb = w.n_cols / kQK, n_groups = w.n_rows / kQ8GroupRows;
  std::vector<uint8_t> bytes(size_t(n_groups * nb) * sizeof(BlockQ4x8));
  auto* out = reinterpret_cast<BlockQ4x8*>(bytes.data());
#pragma omp parallel for schedule(static)
  for (int64_t g = 0; g < n_groups; ++g)
    for (int64_t b = 0; b < nb; ++b) {
      BlockQ4x8& o = out[g * nb + b];
      for (int r = 0; r < kQ8GroupRows; ++r) {
        const auto* src = reinterpret_cast<const BlockQ4_0*>(w.row(g * kQ8GroupRows + r)) + b;
        o.d[r] = src->d;
        for (int i = 0; i < kQK / 2; ++i) o.qs[i / 4][r][i % 4] = src->qs[i];
      }
    }
  return bytes;
}

std::vector<uint8_t> repack_q4kx8(const WeightView& w) {
  const int64_t nb = w.n_cols / kQK_K, n_groups = w.n_rows / kQ8GroupRows;
  std::vector<uint8_t> bytes(size_t(n_groups * nb) * sizeof(BlockQ4Kx8));
  auto* out = reinterpret_cast<BlockQ4Kx8*>(bytes.data());
#pragma omp parallel for schedule(static)
  for (int64_t g = 0; g < n_groups; ++g)
    for (int64_t b = 0; b < nb; ++b) {
      BlockQ4Kx8& o = out[g * nb + b];
      uint8_t sc[64], mn[64];
      for (int r = 0; r < kQ8GroupRows; ++r) {
        const auto* src = reinterpret_cast<const BlockQ4_K*>(w.row(g * kQ8GroupRows + r)) + b;
        o.d[r] = src->d;
        o.dmin[r] = src->dmin;
        uint8_t scale[8], min[8];
        q4k_scales_unpack(src->scales, scale, min);
        for (int s = 0; s < 8; ++s) {
          sc[q4kx8_scale_index(s, r)] = scale[s];
          mn[q4kx8_min_index(s, r)] = min[s];
        }
        for (int i = 0; i < kQK_K / 2; ++i) o.qs[i / 32][i % 32 / 4][r][i % 4] = src->qs[i];
      }
      pack6x64(o.scales, sc);
      pack6x64(o.scales + 48, mn);
    }
  return bytes;
}

std::vector<uint8_t> repack_q5x8(const WeightView& w) {
  const int64_t nb = w.n_cols / kQK, n_groups = w.n_rows / kQ8GroupRows;
  std::vector<uint8_t> bytes(size_t(n_groups * nb) * sizeof(BlockQ5x8));
  auto* out = reinterpret_cast<BlockQ5x8*>(bytes.data());
#pragma omp parallel for schedule(static)
  for (int64_t g = 0; g < n_groups; ++g)
    for (int64_t b = 0; b < nb; ++b) {
      BlockQ5x8& o = out[g * nb + b];
      std::memset(o.qh, 0, sizeof o.qh);
      for (int r = 0; r < kQ8GroupRows; ++r) {
        const auto* src = reinterpret_cast<const BlockQ5_0*>(w.row(g * kQ8GroupRows + r)) + b;
        o.d[r] = src->d;
        uint32_t qh;
        std::memcpy(&qh, src->qh, 4);
        for (int e = 0; e < kQK; ++e) o.qh[e / 4] |= ((qh >> e) & 1u) << (4 * r + e % 4);
        for (int i = 0; i < kQK / 2; ++i) o.qs[i / 4][r][i % 4] = src->qs[i];
      }
    }
  return bytes;
}

std::vector<uint8_t> repack_for_kernels(WeightView& w) {
  if (w.layout != WeightLayout::Rows) return {};
  std::vector<uint8_t> bytes;
  const bool x8 = w.order == DotOrder::Interleaved8;
  if (w.type == GgmlType::Q8_0) {
    bytes = repack_q8x8(w);
    w.layout = WeightLayout::Q8x8;
  } else if ((w.type == GgmlType::Q4_0 || w.type == GgmlType::IQ4_NL) && x8) {
    bytes = repack_q4x8(w);  // IQ4_NL blocks have Q4_0's bytes
    w.layout = WeightLayout::Q4x8;
  } else if (w.type == GgmlType::Q5_0 && w.n_rows % kQ8GroupRows == 0) {
    bytes = repack_q5x8(w);
    w.layout = WeightLayout::Q5x8;
  } else if (w.type == GgmlType::Q4_K && x8) {
    bytes = repack_q4kx8(w);
    w.layout = WeightLayout::Q4Kx8;
  } else {
    return {};
  }
  w.data = bytes.data();
  return bytes;
}

std::vector<uint8_t> repack_q8x8(const WeightView& w) {
  const int64_t nb = w.n_cols / kQ8Block;
  const int64_t n_groups = (w.n_rows + kQ8GroupRows - 1) / kQ8GroupRows;
  std::vector<uint8_t> bytes(size_t(n_groups * nb) * sizeof(BlockQ8x8));
  auto* out = reinterpret_cast<BlockQ8x8*>(bytes.data());
#pragma omp parallel for schedule(static)
  for (int64_t g = 0; g < n_groups; ++g)
    for (int64_t b = 0; b < nb; ++b) {
      BlockQ8x8& o = out[g * nb + b];
      for (int r = 0; r < kQ8GroupRows; ++r) {
        const int64_t row = g * kQ8GroupRows + r;
        const BlockQ8_0* src = row < w.n_rows ? reinterpret_cast<const BlockQ8_0*>(w.row(row)) + b : nullptr;
        o.d[r] = src ? src->d : 0;  // padding rows: zero scale, zero quants
        for (int i = 0; i < kQ8Block; ++i) o.qs[i / 4][r][i % 4] = uint8_t((src ? int(src->qs[i]) : 0) + 128);
      }
    }
  return bytes;
}

void matmul(float* y, int64_t ldy, const PackedActivations& x, const WeightView& w) {
  matmul_impl(y, ldy, x, w, simd_level());
}

void matmul_at(float* y, int64_t ldy, const PackedActivations& x, const WeightView& w, SimdLevel level) {
  if (level > simd_level()) throw InvalidArgument(std::string("matmul_at: this CPU has no ") + simd_level_name(level) + " kernels");
  matmul_impl(y, ldy, x, w, level);
}

void dequantize_row(float* out, const WeightView& w, int64_t r) {
  const int64_t K = w.n_cols;
  if (w.type == GgmlType::Q8_0) {
    int8_t qs[kQ8Block];
    float d = 0;
    for (int64_t b = 0; b < K / kQ8Block; ++b) {
      q8_block(w, r, b, qs, d);
      for (int i = 0; i < kQ8Block; ++i) out[b * kQ8Block + i] = d * float(qs[i]);
    }
    return;
  }
  const uint8_t* p = w.layout == WeightLayout::Rows ? w.row(r) : unpacked_row(w, r);
  if (const QuantType* q = quant_type(w.type)) return q->dequantize(out, p, K);
  for (int64_t k = 0; k < K; ++k) {
    switch (w.type) {
      case GgmlType::F32: out[k] = reinterpret_cast<const float*>(p)[k]; break;
      case GgmlType::F16: out[k] = fp16_to_fp32(reinterpret_cast<const uint16_t*>(p)[k]); break;
      case GgmlType::BF16: out[k] = bf16_to_fp32(reinterpret_cast<const uint16_t*>(p)[k]); break;
      default: break;  // quantized types above
    }
  }
}

}  // namespace ponder

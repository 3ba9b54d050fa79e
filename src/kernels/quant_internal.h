#pragma once
// The functions behind the rows of the quantized-type table (kernels/quant.cpp), one group per
// file: quant_legacy.cpp (Q4_0, Q4_1, Q5_0, Q5_1, IQ4_NL), quant_k.cpp (Q4_K, Q5_K, Q6_K),
// quant_k_low.cpp (Q2_K, Q3_K, IQ4_XS); Q8_0 is in quant.cpp. Signatures as in QuantType:
//   dequantize_X(out (K), row (K / block blocks), K)
//   dot_X(w_row, x_row (the partner's activation format), K): llama.cpp's one-row order
//   dot_x8_X(...): the order of llama.cpp's 8-row repacked kernels (Q4_0, IQ4_NL, Q4_K, Q2_K)
#include <cstdint>

#include "kernels/quant.h"

namespace ponder::quant {

// The 8-lane horizontal sum of llama.cpp's hsum_float_8: ((l0+l4)+(l2+l6)) + ((l1+l5)+(l3+l7)).
inline float hsum8(const float l[8]) {
  const float a = l[0] + l[4], b = l[1] + l[5], c = l[2] + l[6], d = l[3] + l[7];
  return (a + c) + (b + d);
}

void dequantize_q8_0(float* out, const uint8_t* row, int64_t K);
float dot_q8_0(const uint8_t* w, const uint8_t* x, int64_t K);

void dequantize_q4_0(float* out, const uint8_t* row, int64_t K);
float dot_q4_0(const uint8_t* w, const uint8_t* x, int64_t K);
float dot_x8_q4_0(const uint8_t* w, const uint8_t* x, int64_t K);

void dequantize_q4_1(float* out, const uint8_t* row, int64_t K);
float dot_q4_1(const uint8_t* w, const uint8_t* x, int64_t K);

void dequantize_q5_0(float* out, const uint8_t* row, int64_t K);
float dot_q5_0(const uint8_t* w, const uint8_t* x, int64_t K);

void dequantize_q5_1(float* out, const uint8_t* row, int64_t K);
float dot_q5_1(const uint8_t* w, const uint8_t* x, int64_t K);

void dequantize_iq4_nl(float* out, const uint8_t* row, int64_t K);
float dot_iq4_nl(const uint8_t* w, const uint8_t* x, int64_t K);
float dot_x8_iq4_nl(const uint8_t* w, const uint8_t* x, int64_t K);

void dequantize_q2_k(float* out, const uint8_t* row, int64_t K);
float dot_q2_k(const uint8_t* w, const uint8_t* x, int64_t K);
float dot_x8_q2_k(const uint8_t* w, const uint8_t* x, int64_t K);       // llama.cpp's 8-row gemv
float dot_x8_q2_k_gemm(const uint8_t* w, const uint8_t* x, int64_t K);  // its 8-row, 4-token gemm

void dequantize_q3_k(float* out, const uint8_t* row, int64_t K);
float dot_q3_k(const uint8_t* w, const uint8_t* x, int64_t K);

void dequantize_iq4_xs(float* out, const uint8_t* row, int64_t K);
float dot_iq4_xs(const uint8_t* w, const uint8_t* x, int64_t K);
float dot_x8_iq4_xs(const uint8_t* w, const uint8_t* x, int64_t K);  // its 8-row panel kernels (T >= 8)

void dequantize_q4_k(float* out, const uint8_t* row, int64_t K);
float dot_q4_k(const uint8_t* w, const uint8_t* x, int64_t K);
float dot_x8_q4_k(const uint8_t* w, const uint8_t* x, int64_t K);       // llama.cpp's 8-row gemv
float dot_x8_q4_k_gemm(const uint8_t* w, const uint8_t* x, int64_t K);  // its 8-row, 4-token gemm

void dequantize_q5_k(float* out, const uint8_t* row, int64_t K);
float dot_q5_k(const uint8_t* w, const uint8_t* x, int64_t K);

void dequantize_q6_k(float* out, const uint8_t* row, int64_t K);
float dot_q6_k(const uint8_t* w, const uint8_t* x, int64_t K);

}  // namespace ponder::quant

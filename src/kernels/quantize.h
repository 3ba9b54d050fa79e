#pragma once
// Weight quantizers: float rows to the block formats of kernels/quant_blocks.h, byte for byte as
// llama.cpp 0.5.0's llama-quantize writes them without an importance matrix (its
// quantize_row_<type>_ref / quantize_<type> functions). One function per type; one entry point.
#include <cstdint>

#include "core/ggml_type.h"

namespace ponder {

// True for the types quantize_row can write (Q4_0, Q4_1, Q5_0, Q5_1, Q8_0, Q2_K, Q3_K, Q4_K, Q5_K,
// Q6_K, IQ4_NL, IQ4_XS).
bool can_quantize(GgmlType type);

// x: K floats (K a multiple of the type's block size) -> out: ggml_row_size(type, K) bytes.
// Throws InvalidArgument for a type it cannot write or a K that is not a multiple of the block.
void quantize_row(uint8_t* out, const float* x, int64_t K, GgmlType type);

namespace quantize {
// The per-type functions behind quantize_row (kernels/quantize_legacy.cpp: Q4_0, Q4_1, Q5_0, Q5_1,
// Q8_0, IQ4_NL, IQ4_XS; kernels/quantize_k.cpp: Q2_K, Q3_K, Q4_K, Q5_K, Q6_K).
void row_q4_0(uint8_t* out, const float* x, int64_t K);
void row_q4_1(uint8_t* out, const float* x, int64_t K);
void row_q5_0(uint8_t* out, const float* x, int64_t K);
void row_q5_1(uint8_t* out, const float* x, int64_t K);
void row_q8_0(uint8_t* out, const float* x, int64_t K);
void row_iq4_nl(uint8_t* out, const float* x, int64_t K);
void row_iq4_xs(uint8_t* out, const float* x, int64_t K);
void row_q2_k(uint8_t* out, const float* x, int64_t K);
void row_q3_k(uint8_t* out, const float* x, int64_t K);
void row_q4_k(uint8_t* out, const float* x, int64_t K);
void row_q5_k(uint8_t* out, const float* x, int64_t K);
void row_q6_k(uint8_t* out, const float* x, int64_t K);
}  // namespace quantize

}  // namespace ponder

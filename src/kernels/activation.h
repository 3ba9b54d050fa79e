#pragma once
// Elementwise activations and softmax.
#include <cstdint>

namespace ponder {

// exp(x) by llama.cpp's CPU algorithm (ggml_v_expf), which its softmax and SwiGLU use for every
// full SIMD group (softmax: every element): n = round(x / ln2) by the 1.5 * 2^23 shift, b = x - n ln2
// with ln2 in two parts, exp(b) by a degree-5 polynomial in Estrin form, times 2^n; |n| > 192 gives
// 0 (x < 0) or +inf. ~1.5 ulp. The portable paths call it per element, the AVX-512 paths compute
// the same operations in 16 lanes, so both give the same bits.
float exp_ggml(float x);

// out[i] = silu(gate[i]) * up[i], silu(x) = x / (1 + exp(-x)). (n)
void swiglu_forward(float* out, const float* gate, const float* up, int64_t n);

// x[i] = exp(x[i] - shift), vectorized where the CPU allows (relative error ~2e-7). (n)
void exp_shifted(float* x, int64_t n, float shift);

// Backward of out = silu(gate) * up: dgate, dup (n) from dout (n).
//   silu(g) = g * s(g), s = sigmoid; silu'(g) = s(g) * (1 + g * (1 - s(g)))
void swiglu_backward(float* dgate, float* dup, const float* dout, const float* gate, const float* up, int64_t n);

// In-place softmax of one row. (n)
void softmax_forward(float* x, int64_t n);

// Softmax backward of one row, in place: d = p * (d - sum(d * p)), the sum in double. d is
// dLoss/dp on entry and dLoss/dlogits on return; p is the softmax output. (n)
void softmax_backward(float* d, const float* p, int64_t n);

// log(sum(exp(x))) of one row, accumulated in double. (n)
double log_sum_exp(const float* x, int64_t n);

// log-softmax of one row into out; returns log-sum-exp. (n)
double log_softmax(float* out, const float* logits, int64_t n);

}  // namespace ponder

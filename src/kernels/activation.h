#pragma once
// Elementwise activations and softmax.
#include <cstdint>

namespace ponder {

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

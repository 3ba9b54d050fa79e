#pragma once
// Rotary position embedding over the first n_rot dims of each head.
//   Adjacent (GGUF `llama`): rotates pairs (2i, 2i+1).
//   Neox (GGUF `qwen2`): rotates pairs (i, i + n_rot/2).
// theta_i = pos * base^(-2i / n_rot).
#include <cstdint>

namespace ponder {

enum class RopeStyle { Adjacent, Neox };

// Angles for one position: cos and sin of theta_i, i < n_rot/2. (n_rot/2)
void rope_angles(float* cos_out, float* sin_out, int64_t pos, int n_rot, float freq_base);

// x: (n_heads, head_dim) for one token, rotated in place with the angles of its position.
void rope_forward(float* x, int n_heads, int head_dim, int n_rot, const float* cos_t, const float* sin_t,
                  RopeStyle style);
// The inverse rotation (the backward pass of rope_forward): dx = R^T dy, in place.
void rope_backward(float* dx, int n_heads, int head_dim, int n_rot, const float* cos_t, const float* sin_t,
                   RopeStyle style);

}  // namespace ponder

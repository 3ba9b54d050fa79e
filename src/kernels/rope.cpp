#include "kernels/rope.h"

#include <cmath>

namespace ponder {

void rope_angles(float* cos_out, float* sin_out, int64_t pos, int n_rot, float freq_base) {
  // ggml computes theta_i by repeated multiplication with theta_scale = base^(-2/n_rot) in float;
  // we do the same so the angles carry the same rounding.
  const float theta_scale = std::pow(freq_base, -2.0f / float(n_rot));
  float theta = float(pos);
  for (int i = 0; i < n_rot / 2; ++i) {
    cos_out[i] = std::cos(theta);
    sin_out[i] = std::sin(theta);
    theta *= theta_scale;
  }
}

namespace {
void rotate(float* x, int n_heads, int head_dim, int n_rot, const float* c, const float* s, RopeStyle style,
            float sign) {
  const int half = n_rot / 2;
  for (int h = 0; h < n_heads; ++h) {
    float* xh = x + h * head_dim;
    for (int i = 0; i < half; ++i) {
      const int a = style == RopeStyle::Adjacent ? 2 * i : i;
      const int b = style == RopeStyle::Adjacent ? 2 * i + 1 : i + half;
      const float x0 = xh[a], x1 = xh[b];
      const float sn = sign * s[i];
      // llama.cpp's x0 cos - x1 sin and x0 sin + x1 cos as its compiler contracts them (one fma
      // each); written out, so that no build's contraction choices change the bits.
      xh[a] = std::fma(x0, c[i], -(x1 * sn));
      xh[b] = std::fma(x0, sn, x1 * c[i]);
    }
  }
}
}  // namespace

void rope_forward(float* x, int n_heads, int head_dim, int n_rot, const float* cos_t, const float* sin_t,
                  RopeStyle style) {
  rotate(x, n_heads, head_dim, n_rot, cos_t, sin_t, style, 1.0f);
}

void rope_backward(float* dx, int n_heads, int head_dim, int n_rot, const float* cos_t, const float* sin_t,
                   RopeStyle style) {
  rotate(dx, n_heads, head_dim, n_rot, cos_t, sin_t, style, -1.0f);
}

}  // namespace ponder

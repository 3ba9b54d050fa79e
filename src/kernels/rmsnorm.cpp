#include "kernels/rmsnorm.h"

#include <cmath>

namespace ponder {

void rmsnorm_forward(float* out, const float* x, const float* weight, int64_t T, int64_t C, float eps) {
  for (int64_t t = 0; t < T; ++t) {
    const float* xr = x + t * C;
    float* o = out + t * C;
    double sum = 0;
    for (int64_t i = 0; i < C; ++i) sum += double(xr[i] * xr[i]);
    const float mean = float(sum / double(C));
    const float scale = 1.0f / std::sqrt(mean + eps);
    for (int64_t i = 0; i < C; ++i) o[i] = xr[i] * scale * weight[i];
  }
}

void rmsnorm_forward(float* out, float* rstd, const float* x, const float* weight, int64_t T, int64_t C, float eps) {
  for (int64_t t = 0; t < T; ++t) {
    const float* xr = x + t * C;
    double sum = 0;
    for (int64_t i = 0; i < C; ++i) sum += double(xr[i]) * double(xr[i]);
    const float r = float(1.0 / std::sqrt(sum / double(C) + double(eps)));
    rstd[t] = r;
    for (int64_t i = 0; i < C; ++i) out[t * C + i] = xr[i] * r * weight[i];
  }
}

void rmsnorm_backward(float* dx, float* dweight, const float* dout, const float* x, const float* weight,
                      const float* rstd, int64_t T, int64_t C) {
  for (int64_t t = 0; t < T; ++t) {
    const float* xr = x + t * C;
    const float* dy = dout + t * C;
    const float r = rstd[t];
    double dot = 0;
    for (int64_t i = 0; i < C; ++i) dot += double(dy[i]) * weight[i] * xr[i];
    const float k = float(dot * double(r) * double(r) * double(r) / double(C));
    for (int64_t i = 0; i < C; ++i) {
      dx[t * C + i] += r * weight[i] * dy[i] - xr[i] * k;
      dweight[i] += dy[i] * xr[i] * r;
    }
  }
}

}  // namespace ponder

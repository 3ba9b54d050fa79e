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

}  // namespace ponder

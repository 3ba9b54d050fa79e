#include "train/adamw.h"

#include <cmath>

#include "core/error.h"

namespace ponder {

void AdamWOptions::validate() const {
  auto check = [](bool ok, const char* field, const char* range, float v) {
    if (!ok) throw InvalidArgument(std::string(field) + " must be " + range + ", got " + std::to_string(v));
  };
  check(lr > 0 && std::isfinite(lr), "learning rate", "> 0", lr);
  check(beta1 >= 0 && beta1 < 1, "beta1", "in [0, 1)", beta1);
  check(beta2 >= 0 && beta2 < 1, "beta2", "in [0, 1)", beta2);
  check(eps > 0, "eps", "> 0", eps);
  check(weight_decay >= 0, "weight_decay", ">= 0", weight_decay);
  check(max_grad_norm >= 0, "max_grad_norm", ">= 0", max_grad_norm);
}

double clip_grad_norm(std::span<float> grads, double max_norm) {
  double sq = 0;
  for (float g : grads) sq += double(g) * double(g);
  const double norm = std::sqrt(sq);
  if (max_norm > 0) {
    const double coef = max_norm / (norm + 1e-6);
    if (coef < 1.0)
      for (float& g : grads) g = float(double(g) * coef);
  }
  return norm;
}

void adamw_step(TrainModel& m, std::span<const float> grads, AdamWState& s, const AdamWOptions& o, float lr) {
  adamw_step(m.layout, m.params, grads, s, o, lr);
}

void adamw_step(const ParamLayout& layout, std::span<float> params, std::span<const float> grads, AdamWState& s,
                const AdamWOptions& o, float lr) {
  const size_t n = params.size();
  if (grads.size() != n) throw InvalidArgument("adamw_step: gradient size differs from the parameters");
  if (s.m.size() != n) s.m.assign(n, 0.0f), s.v.assign(n, 0.0f);
  ++s.step;
  const double bc1 = 1.0 - std::pow(double(o.beta1), double(s.step));
  const double bc2_sqrt = std::sqrt(1.0 - std::pow(double(o.beta2), double(s.step)));
  const float step_size = float(lr / bc1);
  for (const ParamTensor& t : layout.tensors) {
    const float decay = t.decay ? 1.0f - lr * o.weight_decay : 1.0f;
    float* p = params.data() + t.offset;
    float* mm = s.m.data() + t.offset;
    float* vv = s.v.data() + t.offset;
    const float* g = grads.data() + t.offset;
#pragma omp parallel for schedule(static) if (t.size > 65536)
    for (size_t i = 0; i < t.size; ++i) {
      p[i] *= decay;
      mm[i] = o.beta1 * mm[i] + (1.0f - o.beta1) * g[i];
      vv[i] = o.beta2 * vv[i] + (1.0f - o.beta2) * g[i] * g[i];
      const float denom = float(std::sqrt(double(vv[i])) / bc2_sqrt) + o.eps;
      p[i] -= step_size * mm[i] / denom;
    }
  }
}

float LrSchedule::at(int64_t step) const {
  if (warmup_steps > 0 && step < warmup_steps) return lr * float(step + 1) / float(warmup_steps);
  const int64_t span = std::max<int64_t>(1, total_steps - warmup_steps);
  const double progress = std::min(1.0, double(step - warmup_steps) / double(span));
  return float(min_lr + 0.5 * (lr - min_lr) * (1.0 + std::cos(M_PI * progress)));
}

}  // namespace ponder

#pragma once
// AdamW with decoupled weight decay (PyTorch's torch.optim.AdamW), gradient clipping by global
// norm (torch.nn.utils.clip_grad_norm_), and the warmup + cosine learning-rate schedule. All flat
// loops over the parameter layout.
#include <cstdint>
#include <span>
#include <vector>

#include "train/params.h"

namespace ponder {

struct AdamWOptions {
  float lr = 1e-3f;
  float beta1 = 0.9f;
  float beta2 = 0.95f;
  float eps = 1e-8f;
  float weight_decay = 0.1f;   // on matrices only (ParamTensor::decay)
  float max_grad_norm = 1.0f;  // 0: no clipping
  void validate() const;       // InvalidArgument naming the field
};

struct AdamWState {
  std::vector<float> m, v;  // first and second moments, the params' layout
  int64_t step = 0;
};

// The global L2 norm of grads (fixed chunks in double: the same bits whatever the threads).
double grad_norm(std::span<const float> grads);
// torch.nn.utils.clip_grad_norm_'s factor for a global norm: max_norm / (norm + 1e-6) when that
// is below 1, else 1 (and 1 when max_norm <= 0: no clipping).
double clip_coefficient(double norm, double max_norm);
// Scales grads so their global L2 norm is at most max_norm (a no-op when max_norm <= 0);
// returns the norm before clipping. A training step instead passes clip_coefficient to
// adamw_step, which scales each gradient as it reads it (the same bits, one pass fewer).
double clip_grad_norm(std::span<float> grads, double max_norm);

// One update of m.params at learning rate lr with the grads times grad_scale (clip_coefficient;
// each g becomes float(double(g) * grad_scale), as clip_grad_norm scales it, when it is not 1).
void adamw_step(TrainModel& m, std::span<const float> grads, AdamWState& state, const AdamWOptions& opt, float lr,
                double grad_scale = 1.0);
// The same for any flat buffer laid out by `layout` (LoRA adapters).
void adamw_step(const ParamLayout& layout, std::span<float> params, std::span<const float> grads, AdamWState& state,
                const AdamWOptions& opt, float lr, double grad_scale = 1.0);

struct LrSchedule {
  float lr = 1e-3f;
  float min_lr = 1e-4f;
  int64_t warmup_steps = 0;
  int64_t total_steps = 1;
  float at(int64_t step) const;  // step counts from 0
};

}  // namespace ponder

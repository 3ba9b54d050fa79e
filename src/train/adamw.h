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

// Scales grads so their global L2 norm is at most max_norm (a no-op when max_norm <= 0);
// returns the norm before clipping.
double clip_grad_norm(std::span<float> grads, double max_norm);

// One update of m.params with the (clipped) grads at learning rate lr.
void adamw_step(TrainModel& m, std::span<const float> grads, AdamWState& state, const AdamWOptions& opt, float lr);
// The same for any flat buffer laid out by `layout` (LoRA adapters).
void adamw_step(const ParamLayout& layout, std::span<float> params, std::span<const float> grads, AdamWState& state,
                const AdamWOptions& opt, float lr);

struct LrSchedule {
  float lr = 1e-3f;
  float min_lr = 1e-4f;
  int64_t warmup_steps = 0;
  int64_t total_steps = 1;
  float at(int64_t step) const;  // step counts from 0
};

}  // namespace ponder

#pragma once
// The trainable model: config, and every parameter in one flat f32 buffer. Gradients and the
// optimizer's moments use exactly the same layout, so clipping and AdamW are flat loops and adding
// a tensor is one line in the layout.
#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "train/config.h"

namespace ponder {

struct ParamTensor {
  std::string name;            // GGUF name (token_embd.weight, blk.0.attn_q.weight, ...)
  std::vector<int64_t> shape;  // (rows, cols) row-major like torch.nn.Linear.weight, or (n)
  size_t offset = 0;           // into the flat buffer
  size_t size = 0;
  bool decay = false;          // weight decay applies (matrices, not norms)
};

struct ParamLayout {
  std::vector<ParamTensor> tensors;
  size_t total = 0;
  static ParamLayout for_config(const TrainConfig& c);
  const ParamTensor& get(const std::string& name) const;  // throws InvalidArgument
};

// Pointers into a flat buffer laid out by ParamLayout (parameters or gradients alike).
struct LayerView {
  float* attn_norm;  // (C)
  float* wq;         // (H*D, C)
  float* wk;         // (Hkv*D, C)
  float* wv;         // (Hkv*D, C)
  float* bq;         // (H*D): null without Q/K/V biases (llama)
  float* bk;         // (Hkv*D)
  float* bv;         // (Hkv*D)
  float* wo;         // (C, H*D)
  float* ffn_norm;   // (C)
  float* w_gate;     // (F, C)
  float* w_up;       // (F, C)
  float* w_down;     // (C, F)
};
struct ParamView {
  float* token_embd;  // (V, C)
  std::vector<LayerView> layers;
  float* output_norm;  // (C)
  float* output;       // (V, C): token_embd when tied
};
ParamView view_params(const TrainConfig& c, const ParamLayout& layout, float* base);

struct TrainModel {
  TrainConfig config;
  ParamLayout layout;
  std::vector<float> params;  // (layout.total)

  explicit TrainModel(const TrainConfig& c);
  ParamView view() { return view_params(config, layout, params.data()); }
  size_t n_params() const { return layout.total; }
};

// Random initialisation: matrices N(0, 0.02), the output projections of each block scaled by
// 1/sqrt(2L) (GPT-2), norms 1, biases 0.
void init_params(TrainModel& m, uint64_t seed);

}  // namespace ponder

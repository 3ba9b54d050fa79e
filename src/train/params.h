#pragma once
// The trainable model: config, and every parameter in one flat f32 buffer. Gradients and the
// optimizer's moments use exactly the same layout, so clipping and AdamW are flat loops and adding
// a tensor is one line in the layout.
#include <array>
#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "core/mapped_file.h"
#include "kernels/matmul.h"
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
  // without_matrices: the layout of a model whose matrices (token_embd, the seven block matrices
  // attn_q/k/v/output and ffn_gate/up/down, output) are frozen outside it (FrozenMatrices): the
  // norms and biases only.
  static ParamLayout for_config(const TrainConfig& c, bool without_matrices = false);
  const ParamTensor& get(const std::string& name) const;  // throws InvalidArgument
  const ParamTensor* find(const std::string& name) const;  // nullptr when absent
};

// Pointers into a flat buffer laid out by ParamLayout (parameters or gradients alike); a matrix
// the layout does not hold (frozen outside it) is null.
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

// LoRA on a GGUF model keeps the base's matrices frozen in the file's own type (F32, F16, BF16,
// Q8_0, the k-quants, ...): views into the mapped file, dequantized to f32 where a training step
// reads them: a block matrix whole (block_matrix), the token embedding row by row, the LM head
// a piece of rows at a time (head_rows, train/frozen_head.h); an F32 matrix is read in place. The
// f32 values are the ones import_gguf would have stored, so the arithmetic is the same as with the
// matrices in params.
struct FrozenMatrices {
  std::shared_ptr<const MappedFile> map;           // keeps the bytes alive
  WeightView token_embd;                           // (V, C)
  WeightView output;                               // (V, C): token_embd's view when tied
  std::vector<std::array<WeightView, 7>> layers;  // per layer, in tensor_name::block_matrices order
  int64_t bytes() const;                          // the matrices' stored bytes (a tied head once)
};

struct TrainModel {
  TrainConfig config;
  ParamLayout layout;
  std::vector<float> params;  // (layout.total)
  std::shared_ptr<const FrozenMatrices> frozen;  // the matrices when not in params (LoRA)

  explicit TrainModel(const TrainConfig& c, bool without_matrices = false);
  ParamView view() { return view_params(config, layout, params.data()); }
  size_t n_params() const { return layout.total; }
};

// Matrix `which` (tensor_name::block_matrices order) of layer l as f32: `param` itself (the
// model's view of it), or with a frozen base the matrix dequantized into scratch (resized).
const float* block_matrix(const TrainModel& m, const float* param, int l, int which, std::vector<float>& scratch);

// Rows v0..v0+n-1 of the LM head (V, C) as f32: `param` (the model's view of the head) offset to
// row v0, or with a frozen base those rows dequantized into scratch (resized).
const float* head_rows(const TrainModel& m, const float* param, int64_t v0, int64_t n, std::vector<float>& scratch);
// Row v of the LM head as f32 into out (C): head_rows for one row, without shared scratch (threads).
void head_row(const TrainModel& m, const float* param, int64_t v, float* out);

// The model with every parameter in params: a frozen base's matrices dequantized (export, merge).
TrainModel thaw(const TrainModel& m);

// Random initialisation: matrices N(0, 0.02), the output projections of each block scaled by
// 1/sqrt(2L) (GPT-2), norms 1, biases 0.
void init_params(TrainModel& m, uint64_t seed);

}  // namespace ponder

#pragma once
// LoRA (Hu et al. 2021, as PEFT and llama.cpp define it): a frozen matrix W (out, in) of the base
// model gets a trainable low-rank update, y = x W^T + s (x A^T) B^T with A (r, in), B (out, r),
// s = alpha / r. A starts uniform in +-1/sqrt(in) (PEFT's kaiming_uniform(a=sqrt(5))), B at zero, so
// training starts from the base model exactly. Only A and B are trained and kept in AdamW; the base
// gets no gradient (the backward pass still carries dX through W).
//
// The adapters of a model are one flat buffer laid out as ParamLayout (AdamW and clipping run on
// it as on a model), tensors named as llama.cpp's adapter files name them:
// blk.N.<tensor>.weight.lora_a (r, in) and blk.N.<tensor>.weight.lora_b (out, r).
#include <cstdint>
#include <nlohmann/json.hpp>
#include <string>
#include <string_view>
#include <vector>

#include "formats/gguf.h"
#include "train/params.h"

namespace ponder {

struct Model;

// The matrices of a layer an adapter can target: --lora-targets q,k,v,o,gate,up,down.
enum class LoraTarget { Q, K, V, O, Gate, Up, Down };
inline constexpr int kLoraTargets = 7;

struct LoraConfig {
  int rank = 0;       // r; 0: no LoRA (full fine-tuning)
  float alpha = 16;   // s = alpha / r
  std::vector<LoraTarget> targets = {LoraTarget::Q, LoraTarget::K, LoraTarget::V, LoraTarget::O,
                                     LoraTarget::Gate, LoraTarget::Up, LoraTarget::Down};
  bool enabled() const { return rank > 0; }
  float scale() const { return alpha / float(rank); }
  bool has(LoraTarget t) const;
  void validate(const TrainConfig& model) const;  // InvalidArgument naming the flag
  bool operator==(const LoraConfig&) const = default;
};

// "q,k,v,o,gate,up,down" (any subset, any order, no repeats); InvalidArgument naming the flag.
std::vector<LoraTarget> parse_lora_targets(std::string_view text);
std::string lora_targets_text(const std::vector<LoraTarget>& targets);
// What a run's options record of its LoRA config (checked on --resume): lora_rank, lora_alpha,
// lora_targets; nothing without LoRA, so checkpoints of runs without it stay resumable.
nlohmann::json lora_run_options(const LoraConfig& c);
// The GGUF name of a layer's target matrix: blk.N.attn_q.weight, ...
std::string lora_base_name(int layer, LoraTarget t);

struct LoraAdapters {
  LoraConfig config;
  ParamLayout layout;
  std::vector<float> params;  // (layout.total)

  LoraAdapters(const TrainConfig& model, const LoraConfig& c);
  // A (r, in) and B (out, r) of a layer's target in a buffer of this layout (params or
  // gradients); nullptr when the matrix is not a target.
  float* a(float* base, int layer, LoraTarget t) const;
  float* b(float* base, int layer, LoraTarget t) const;
  const float* a(int layer, LoraTarget t) const { return a(const_cast<float*>(params.data()), layer, t); }
  const float* b(int layer, LoraTarget t) const { return b(const_cast<float*>(params.data()), layer, t); }
  int n_layers() const { return int(a_offset_.size()) / kLoraTargets; }

 private:
  std::vector<int64_t> a_offset_, b_offset_;  // (L * kLoraTargets), -1 for no adapter
};

// The (in, out) of a layer's target matrix.
std::pair<int64_t, int64_t> lora_shape(const TrainConfig& model, LoraTarget t);

// A uniform in +-1/sqrt(in), B zero, from the seed.
void init_lora(LoraAdapters& lora, uint64_t seed);

// W += s B A for every adapter: the merged model gives the same outputs as base + adapters.
// The base must hold its matrices (thaw a frozen one first).
void merge_lora(TrainModel& base, const LoraAdapters& lora);
// What a LoRA run has trained, as one model: the base (thawed when frozen) with the adapters merged.
TrainModel merged_model(const TrainModel& base, const LoraAdapters& lora);

// The engine runs base + adapters without merging them (model/model.h LoraDelta): each adapted
// matrix of `engine` (the base model loaded by the engine) reads lora's A and B in place, so it
// always runs the current adapters. lora must outlive that use and keep its buffer.
void attach_lora(Model& engine, const LoraAdapters& lora);

// llama.cpp's LoRA adapter GGUF: general.type "adapter", adapter.type "lora", adapter.lora.alpha,
// general.architecture of the base, and the lora_a/lora_b tensors in F32.
void export_lora_gguf(const LoraAdapters& lora, const TrainConfig& base, const std::string& path,
                      const std::string& name = "ponder-lora");

}  // namespace ponder

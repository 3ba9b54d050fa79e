#include "model/quantize_model.h"

#include <algorithm>
#include <cctype>
#include <cstdio>
#include <cstring>
#include <functional>
#include <numeric>

#include "core/error.h"
#include "core/fp16.h"
#include "core/parallel.h"
#include "kernels/matmul.h"
#include "kernels/quantize.h"

namespace ponder {

const std::vector<QuantMix>& quant_mixes() {
  static const std::vector<QuantMix> mixes = {
      {"Q4_0", 2, GgmlType::Q4_0},     {"Q4_1", 3, GgmlType::Q4_1},     {"Q5_0", 8, GgmlType::Q5_0},
      {"Q5_1", 9, GgmlType::Q5_1},     {"Q8_0", 7, GgmlType::Q8_0},     {"Q2_K", 10, GgmlType::Q2_K},
      {"Q3_K_S", 11, GgmlType::Q3_K},  {"Q3_K_M", 12, GgmlType::Q3_K},  {"Q3_K_L", 13, GgmlType::Q3_K},
      {"Q4_K_S", 14, GgmlType::Q4_K},  {"Q4_K_M", 15, GgmlType::Q4_K},  {"Q5_K_S", 16, GgmlType::Q5_K},
      {"Q5_K_M", 17, GgmlType::Q5_K},  {"Q6_K", 18, GgmlType::Q6_K},    {"IQ4_NL", 25, GgmlType::IQ4_NL},
      {"IQ4_XS", 30, GgmlType::IQ4_XS},
      // llama-quantize's aliases
      {"Q3_K", 12, GgmlType::Q3_K},    {"Q4_K", 15, GgmlType::Q4_K},    {"Q5_K", 17, GgmlType::Q5_K},
  };
  return mixes;
}

const QuantMix* find_quant_mix(const std::string& name) {
  for (const QuantMix& m : quant_mixes()) {
    const std::string n = m.name;
    if (n.size() == name.size() &&
        std::equal(n.begin(), n.end(), name.begin(), [](char a, char b) { return a == std::toupper((unsigned char)b); }))
      return &m;
  }
  return nullptr;
}

std::string quant_mix_names() {
  std::string s;
  for (const QuantMix& m : quant_mixes()) s += (s.empty() ? "" : ", ") + std::string(m.name);
  return s;
}

const QuantMix& parse_quant_mix(const std::string& name) {
  if (const QuantMix* m = find_quant_mix(name)) return *m;
  throw InvalidArgument("unknown quantization type '" + name + "'; valid types: " + quant_mix_names());
}

QuantModelInfo QuantModelInfo::from_metadata(const std::vector<std::pair<std::string, GgufValue>>& metadata,
                                             const std::string& path) {
  const GgufFile f = GgufFile::from_metadata(path, metadata);
  QuantModelInfo info;
  info.arch = f.get_string("general.architecture");
  if (info.arch != "llama" && info.arch != "qwen2")
    throw FormatError(path + ": quantizing needs a 'llama' or 'qwen2' architecture model, this one is '" + info.arch + "'");
  const std::string& a = info.arch;
  info.n_layer = int(f.get_int(a + ".block_count"));
  info.n_head = int(f.get_int(a + ".attention.head_count"));
  info.n_head_kv = int(f.get_int(a + ".attention.head_count_kv", info.n_head));
  info.n_expert = int(f.get_int(a + ".expert_count", 0));
  return info;
}

namespace {

// llama.cpp's broad tensor categories (llama-quant.cpp tensor_get_category).
enum class Category { TokenEmbd, AttnQ, AttnV, AttnK, AttnQkv, AttnKvB, AttnOutput, FfnUp, FfnGate, FfnDown, Output, Other };

bool has(const std::string& s, const char* part) { return s.find(part) != std::string::npos; }

Category category_of(const std::string& name) {
  if (name == "output.weight") return Category::Output;
  if (name == "token_embd.weight" || name == "per_layer_token_embd.weight") return Category::TokenEmbd;
  if (has(name, "attn_qkv.weight")) return Category::AttnQkv;
  if (has(name, "attn_kv_b.weight")) return Category::AttnKvB;
  if (has(name, "attn_v.weight")) return Category::AttnV;
  if (has(name, "attn_k.weight")) return Category::AttnK;
  if (has(name, "attn_q.weight")) return Category::AttnQ;
  if (has(name, "attn_output.weight")) return Category::AttnOutput;
  if (has(name, "ffn_up")) return Category::FfnUp;
  if (has(name, "ffn_gate")) return Category::FfnGate;
  if (has(name, "ffn_down")) return Category::FfnDown;
  return Category::Other;
}

bool is_attn_v_like(Category c) { return c == Category::AttnV || c == Category::AttnQkv || c == Category::AttnKvB; }

// ggml_n_dims: trailing dimensions of size 1 do not count.
int n_dims(const std::vector<int64_t>& ne) {
  int n = int(ne.size());
  while (n > 1 && ne[size_t(n - 1)] == 1) --n;
  return n;
}

// llama.cpp's tensor_allows_quantization for the default parameters: matrices whose names end in
// "weight", except norms and the small or special tensors of other families.
bool allows_quantization(const TensorInfo& t) {
  if (n_dims(t.ne) < 2) return false;
  const std::string& name = t.name;
  if (name.rfind("weight") != name.size() - 6) return false;
  for (const char* skip : {"_norm.weight", "ffn_gate_inp.weight", "ffn_gate_tid2eid.weight", "altup", "laurel",
                           "per_layer_model_proj", "ssm_conv1d", "shortconv.conv.weight", "indexer.k_proj.weight",
                           "indexer.q_proj.weight", "time_mix_first.weight", "time_mix_w0.weight", "time_mix_w1.weight",
                           "time_mix_w2.weight", "time_mix_v0.weight", "time_mix_v1.weight", "time_mix_v2.weight",
                           "time_mix_a0.weight", "time_mix_a1.weight", "time_mix_a2.weight", "time_mix_g1.weight",
                           "time_mix_g2.weight", "time_mix_decay_w1.weight", "time_mix_decay_w2.weight",
                           "time_mix_lerp_fused.weight", "attn_rel_b.weight", ".position_embd", "sam.pos_embd",
                           "sam.neck.", "sam.net_", ".rel_pos", ".patch_embd", ".patch_merger", "a.rvq.codebook",
                           "mm.a.code_embd"})
    if (has(name, skip)) return false;
  return true;
}

// The layer of "blk.N....", -1 for tensors outside the blocks (llama.cpp's sscanf).
int layer_of(const std::string& name) {
  int layer = -1;
  std::sscanf(name.c_str(), "blk.%d.", &layer);
  return layer;
}

// llama-quantize's walk over the tensors: counters of the tensors seen so far per category.
struct QuantState {
  QuantModelInfo info;
  uint32_t ftype = 0;
  int n_attention_wv = 0, i_attention_wv = 0, i_ffn_down = 0;
  bool tied_embeddings = true;  // no output.weight
};

// More bits for the first and last eighth of the layers and every third one between.
bool use_more_bits(int i_layer, int n_layers) {
  return i_layer < n_layers / 8 || i_layer >= 7 * n_layers / 8 || (i_layer - n_layers / 8) % 3 == 2;
}

// LLAMA_FTYPE numbers of the mixes the rules below name.
enum : uint32_t {
  kQ2_K = 10, kQ3_K_S = 11, kQ3_K_M = 12, kQ3_K_L = 13, kQ4_K_S = 14, kQ4_K_M = 15, kQ5_K_M = 17,
  kIQ4_NL = 25, kIQ4_XS = 30,
};

bool is_70b(const QuantModelInfo& m) {
  if (m.n_layer != 80) return false;
  return m.arch == "qwen2" || (m.n_expert != 8 && m.n_head != m.n_head_kv);
}

// llama.cpp's llama_tensor_get_type_impl for the mixes of quant_mixes() (llama and qwen2).
GgmlType mix_rule(QuantState& qs, GgmlType type, const TensorInfo& t, Category cat) {
  const uint32_t ft = qs.ftype;
  const QuantModelInfo& m = qs.info;
  const int n_gqa = m.n_head_kv > 0 ? m.n_head / m.n_head_kv : 0;
  if (cat == Category::Output || (qs.tied_embeddings && cat == Category::TokenEmbd)) {
    if (t.ne[0] % ggml_block_size(type) != 0) return GgmlType::Q8_0;
    return type == GgmlType::Q8_0 ? type : GgmlType::Q6_K;
  }
  if (is_attn_v_like(cat)) {
    const int i = qs.i_attention_wv++;
    if (ft == kQ2_K) type = n_gqa >= 4 ? GgmlType::Q4_K : GgmlType::Q3_K;
    else if (ft == kQ3_K_M) type = i < 2 ? GgmlType::Q5_K : GgmlType::Q4_K;
    else if (ft == kQ3_K_L) type = GgmlType::Q5_K;
    else if ((ft == kIQ4_NL || ft == kIQ4_XS) && n_gqa >= 4) type = GgmlType::Q5_K;
    else if ((ft == kQ4_K_M || ft == kQ5_K_M) && use_more_bits(i, qs.n_attention_wv)) type = GgmlType::Q6_K;
    else if (ft == kQ4_K_S && i < 4) type = GgmlType::Q5_K;
    if (is_70b(m) && (type == GgmlType::Q3_K || type == GgmlType::Q4_K)) type = GgmlType::Q5_K;
    if (m.n_expert == 8) type = GgmlType::Q8_0;
    return type;
  }
  if (cat == Category::AttnK) return m.n_expert == 8 ? GgmlType::Q8_0 : type;
  if (cat == Category::FfnDown) {
    int i_layer = qs.i_ffn_down++;
    const int n_layer = m.n_layer;
    if (m.n_expert > 1) {  // experts need not come in layer order: the layer is in the name
      i_layer = layer_of(t.name);
      if (i_layer < 0 || i_layer >= n_layer)
        throw FormatError("tensor '" + t.name + "': bad layer for a model of " + std::to_string(n_layer) + " layers");
    }
    if (ft == kQ2_K) type = GgmlType::Q3_K;
    else if (ft == kQ3_K_M) type = i_layer < n_layer / 16 ? GgmlType::Q5_K : GgmlType::Q4_K;
    else if (ft == kQ3_K_L) type = GgmlType::Q5_K;
    else if (ft == kQ4_K_M) { if (use_more_bits(i_layer, n_layer)) type = GgmlType::Q6_K; }
    else if (i_layer < n_layer / 8 && (ft == kIQ4_NL || ft == kIQ4_XS)) type = GgmlType::Q5_K;
    else if (ft == kQ5_K_M && use_more_bits(i_layer, n_layer)) type = GgmlType::Q6_K;
    else if (ft == kQ4_K_S && i_layer < n_layer / 8) type = GgmlType::Q5_K;
    return type;
  }
  if (cat == Category::AttnOutput) {
    if (m.n_expert == 8) {
      if (ft == kQ2_K || ft == kQ3_K_S || ft == kQ3_K_M || ft == kIQ4_NL || ft == kQ4_K_S || ft == kQ4_K_M || ft == kIQ4_XS)
        type = GgmlType::Q5_K;
    } else if (ft == kQ2_K) type = GgmlType::Q3_K;
    else if (ft == kQ3_K_M) type = GgmlType::Q4_K;
    else if (ft == kQ3_K_L) type = GgmlType::Q5_K;
    return type;
  }
  return type;
}

// A type whose blocks do not fit the rows falls back to one with blocks of 32, or to F16.
GgmlType fallback(GgmlType type, int64_t n_cols) {
  if (n_cols % ggml_block_size(type) == 0) return type;
  switch (type) {
    case GgmlType::IQ4_XS: type = GgmlType::IQ4_NL; break;
    case GgmlType::Q2_K: case GgmlType::Q3_K: type = GgmlType::Q4_0; break;
    case GgmlType::Q4_K: type = GgmlType::Q5_0; break;
    case GgmlType::Q5_K: type = GgmlType::Q5_1; break;
    case GgmlType::Q6_K: type = GgmlType::Q8_0; break;
    default: break;  // already a type of 32-blocks
  }
  return n_cols % ggml_block_size(type) == 0 ? type : GgmlType::F16;
}

}  // namespace

std::vector<TensorPlan> plan_quantization(const std::vector<TensorInfo>& tensors, const QuantModelInfo& info,
                                          const QuantMix& mix) {
  std::vector<TensorPlan> plan(tensors.size());
  std::vector<int> layer(tensors.size());
  for (size_t i = 0; i < tensors.size(); ++i) plan[i].input = i, layer[i] = layer_of(tensors[i].name);
  std::sort(plan.begin(), plan.end(), [&](const TensorPlan& a, const TensorPlan& b) {
    if (layer[a.input] != layer[b.input]) return layer[a.input] < layer[b.input];
    return tensors[a.input].name < tensors[b.input].name;
  });
  QuantState qs{.info = info, .ftype = mix.ftype};
  for (const TensorInfo& t : tensors) {
    const Category c = category_of(t.name);
    if (is_attn_v_like(c)) ++qs.n_attention_wv;
    if (c == Category::Output) qs.tied_embeddings = false;
  }
  for (TensorPlan& p : plan) {
    const TensorInfo& t = tensors[p.input];
    p.type = t.type;
    if (!allows_quantization(t)) continue;
    p.type = fallback(mix_rule(qs, mix.base_type, t, category_of(t.name)), t.ne[0]);
  }
  return plan;
}

namespace {

// Row r of a float tensor as F32.
void read_row(float* out, const uint8_t* data, GgmlType type, int64_t K, int64_t r) {
  const uint8_t* row = data + r * ggml_row_size(type, K);
  if (type == GgmlType::F32) {
    std::memcpy(out, row, size_t(K) * 4);
    return;
  }
  const auto* h = reinterpret_cast<const uint16_t*>(row);
  for (int64_t k = 0; k < K; ++k) out[k] = type == GgmlType::F16 ? fp16_to_fp32(h[k]) : bf16_to_fp32(h[k]);
}

// All rows of a tensor converted to `type` (OpenMP over rows).
std::vector<uint8_t> convert_tensor(const GgufTensorData& t, GgmlType type) {
  const int64_t K = t.ne[0];
  const int64_t n_rows = std::accumulate(t.ne.begin() + 1, t.ne.end(), int64_t(1), std::multiplies<>());
  const int64_t row_bytes = ggml_row_size(type, K);
  std::vector<uint8_t> out(size_t(n_rows * row_bytes));
  ParallelErrors errors;
#pragma omp parallel
  {
    std::vector<float> x(static_cast<size_t>(K));
#pragma omp for schedule(dynamic, 16)
    for (int64_t r = 0; r < n_rows; ++r)
      errors.run([&] {
        read_row(x.data(), t.data.data(), t.type, K, r);
        uint8_t* dst = out.data() + r * row_bytes;
        if (can_quantize(type)) quantize_row(dst, x.data(), K, type);
        else convert_row(dst, x.data(), K, type);  // F16: the fallback for rows not a multiple of 32
      });
  }
  errors.rethrow();
  return out;
}

bool is_float(GgmlType t) { return t == GgmlType::F32 || t == GgmlType::F16 || t == GgmlType::BF16; }

}  // namespace

QuantizedModel quantize_model(const std::vector<std::pair<std::string, GgufValue>>& metadata,
                              const std::vector<GgufTensorData>& tensors, const QuantMix& mix,
                              const std::string& path, const QuantizeProgress& progress) {
  const QuantModelInfo info = QuantModelInfo::from_metadata(metadata, path);
  std::vector<TensorInfo> infos;
  for (const GgufTensorData& t : tensors) infos.push_back({.name = t.name, .ne = t.ne, .type = t.type});
  const std::vector<TensorPlan> plan = plan_quantization(infos, info, mix);
  for (const TensorPlan& p : plan) {
    const GgufTensorData& t = tensors[p.input];
    if (p.type != t.type && !is_float(t.type))
      throw InvalidArgument(path + ": tensor '" + t.name + "' is " + ggml_type_name(uint32_t(t.type)) +
                            "; quantizing needs an F32, F16 or BF16 model (" + std::string(mix.name) + " wants " +
                            ggml_type_name(uint32_t(p.type)) + " here)");
  }

  QuantizedModel out;
  for (const auto& kv : metadata)
    if (kv.first != "general.quantization_version" && kv.first != "general.file_type" && kv.first != "split.no" &&
        kv.first != "split.count" && kv.first != "split.tensors.count")
      out.metadata.push_back(kv);
  out.metadata.emplace_back("general.quantization_version", GgufValue{uint32_t(2)});
  out.metadata.emplace_back("general.file_type", GgufValue{mix.ftype});

  out.storage.reserve(plan.size());
  for (const TensorPlan& p : plan) {
    const GgufTensorData& t = tensors[p.input];
    GgufTensorData& o = out.tensors.emplace_back(t);
    o.type = p.type;
    o.data = out.storage.emplace_back(p.type != t.type ? convert_tensor(t, p.type)
                                                       : std::vector<uint8_t>(t.data.begin(), t.data.end()));
    if (progress) progress(int64_t(out.tensors.size()), int64_t(plan.size()), t.name);
  }
  return out;
}

void quantize_gguf(const std::string& in_path, const std::string& out_path, const QuantMix& mix,
                   const QuantizeProgress& progress) {
  const GgufFile in = read_gguf(in_path);
  std::vector<GgufTensorData> tensors;
  for (const GgufTensor& t : in.tensors) tensors.push_back({.name = t.name, .ne = t.ne, .type = t.type, .data = t.bytes()});
  const QuantizedModel q = quantize_model(in.metadata, tensors, mix, in_path, progress);
  write_gguf(out_path, q.metadata, q.tensors);
}

WeightFormat parse_weight_format(const std::string& name, const std::string& flag) {
  std::string lower = name;
  for (char& c : lower) c = char(std::tolower((unsigned char)c));
  if (lower == "f32") return {.plain = GgmlType::F32};
  if (lower == "f16") return {.plain = GgmlType::F16};
  if (lower == "bf16") return {.plain = GgmlType::BF16};
  if (const QuantMix* m = find_quant_mix(name)) return {.plain = GgmlType::F32, .quant = m};
  throw InvalidArgument(flag + " '" + name + "': expected f32, f16, bf16 or a quantization type: " + quant_mix_names());
}

}  // namespace ponder

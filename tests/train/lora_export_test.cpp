// LoRA adapters outside the trainer: the adapter GGUF (llama.cpp's format) applied by the engine
// (generate --lora) against the merged model the trainer exports, and the adapter files the engine
// must refuse.
#include <filesystem>
#include <gtest/gtest.h>

#include "core/error.h"
#include "core/rng.h"
#include "support/engine_logits.h"
#include "model/lora_apply.h"
#include "support/temp_path.h"
#include "train/char_vocab.h"
#include "train/lora.h"
#include "train/model_io.h"

namespace ponder {
namespace {

using ::ponder::testing::last_logits;
using ::ponder::testing::temp_path;

struct Fixture {
  TrainModel base;
  LoraAdapters lora;
  std::string base_path, merged_path, lora_path;
};

Fixture make_fixture(const std::string& name) {
  const Tokenizer tok = char_tokenizer();
  TrainConfig c{.vocab = int(tok.n_vocab()), .dim = 32, .n_layers = 2, .n_heads = 4, .n_kv_heads = 2, .ffn = 48,
                .ctx = 64, .tied = true, .arch = "qwen2"};
  Fixture f{.base = TrainModel(c), .lora = LoraAdapters(c, {.rank = 4, .alpha = 6.0f, .targets = parse_lora_targets("q,k,o,up,down")}),
            .base_path = temp_path(name + "_base.gguf"), .merged_path = temp_path(name + "_merged.gguf"),
            .lora_path = temp_path(name + "_lora.gguf")};
  init_params(f.base, 1);
  Rng rng(2);
  for (float& p : f.lora.params) p = 0.3f * float(rng.normal());
  export_gguf(f.base, char_vocab_metadata(), f.base_path);
  TrainModel merged = f.base;
  merge_lora(merged, f.lora);
  export_gguf(merged, char_vocab_metadata(), f.merged_path);
  export_lora_gguf(f.lora, c, f.lora_path);
  return f;
}

TEST(LoraExport, TheEngineAppliesTheAdapterAsTheMergedModel) {
  const Fixture f = make_fixture("apply");
  const GgufFile a = read_gguf(f.lora_path);
  EXPECT_EQ(a.get_string("general.type"), "adapter");
  EXPECT_EQ(a.get_string("adapter.type"), "lora");
  EXPECT_EQ(a.get_float("adapter.lora.alpha"), 6.0);
  const GgufTensor& la = a.get_tensor("blk.1.attn_q.weight.lora_a");
  const GgufTensor& lb = a.get_tensor("blk.1.attn_q.weight.lora_b");
  EXPECT_EQ(la.ne, (std::vector<int64_t>{32, 4}));  // llama.cpp: a->ne[0] = in, a->ne[1] = r = b->ne[0]
  EXPECT_EQ(lb.ne, (std::vector<int64_t>{4, 32}));
  EXPECT_EQ(a.find_tensor("blk.0.attn_v.weight.lora_a"), nullptr) << "v is not a target";

  const std::vector<int32_t> tokens = char_tokenizer().encode("Q: 12+7-3= A: <think>", true, false);
  const auto base = load_model(f.base_path);
  const std::vector<float> plain = last_logits(*base, tokens);
  apply_lora(*base, f.lora_path);
  const std::vector<float> applied = last_logits(*base, tokens);
  const std::vector<float> merged = last_logits(*load_model(f.merged_path), tokens);
  // x W^T + s (x A^T) B^T against x (W + s B A)^T: the same up to float rounding.
  double largest = 0, diff = 0;
  for (size_t i = 0; i < merged.size(); ++i) {
    largest = std::max(largest, double(std::fabs(merged[i])));
    diff = std::max(diff, double(std::fabs(applied[i] - merged[i])));
  }
  EXPECT_LT(diff, 1e-5 * largest) << "the adapter at run time against the merged model";
  double moved = 0;
  for (size_t i = 0; i < plain.size(); ++i) moved = std::max(moved, double(std::fabs(plain[i] - applied[i])));
  EXPECT_GT(moved, 1e-2) << "the adapter should change the logits";
  for (const std::string& p : {f.base_path, f.merged_path, f.lora_path}) std::filesystem::remove(p);
}

std::string apply_error(const std::string& model_path, const std::string& adapter) {
  const auto m = load_model(model_path);
  try {
    apply_lora(*m, adapter);
  } catch (const FormatError& e) {
    return e.what();
  }
  return "(no error)";
}

TEST(LoraExport, BadAdaptersAreRefusedNamingTheProblem) {
  const Fixture f = make_fixture("bad");
  // A model file is no adapter.
  EXPECT_NE(apply_error(f.base_path, f.base_path).find("not a LoRA adapter"), std::string::npos);
  // Another architecture, a lone lora_a, a shape that does not fit.
  const GgufFile a = read_gguf(f.lora_path);
  auto rewrite = [&](const std::string& name, auto edit_meta, auto keep_tensor, int64_t bad_in) {
    std::vector<std::pair<std::string, GgufValue>> meta = a.metadata;
    edit_meta(meta);
    std::vector<GgufTensorData> tensors;
    for (const GgufTensor& t : a.tensors) {
      if (!keep_tensor(t.name)) continue;
      std::vector<int64_t> ne = t.ne;
      if (bad_in > 0 && t.name == "blk.0.attn_q.weight.lora_a") ne = {bad_in, t.ne[1] * t.ne[0] / bad_in};
      tensors.push_back({.name = t.name, .ne = ne, .type = t.type, .data = t.bytes()});
    }
    const std::string path = temp_path(name + ".gguf");
    write_gguf(path, meta, tensors);
    return path;
  };
  const auto keep_all = [](const std::string&) { return true; };
  const auto same_meta = [](auto&) {};
  const std::string llama = rewrite("lora_llama", [](auto& meta) {
    for (auto& kv : meta)
      if (kv.first == "general.architecture") kv.second = GgufValue{std::string("llama")};
  }, keep_all, 0);
  EXPECT_NE(apply_error(f.base_path, llama).find("an adapter for 'llama', the model is 'qwen2'"), std::string::npos);
  const std::string lone = rewrite("lora_lone", same_meta, [](const std::string& n) { return n != "blk.1.ffn_up.weight.lora_b"; }, 0);
  EXPECT_NE(apply_error(f.base_path, lone).find("'blk.1.ffn_up.weight.lora_a' has no lora_b"), std::string::npos);
  const std::string shape = rewrite("lora_shape", same_meta, keep_all, 16);
  EXPECT_NE(apply_error(f.base_path, shape).find("do not fit the model's 32 x 32 matrix"), std::string::npos)
      << apply_error(f.base_path, shape);
  for (const std::string& p : {f.base_path, f.merged_path, f.lora_path, llama, lone, shape}) std::filesystem::remove(p);
}

}  // namespace
}  // namespace ponder

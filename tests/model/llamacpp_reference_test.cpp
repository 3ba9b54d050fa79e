// The model runtime against llama.cpp's own outputs (../shared/refdata/*_llamacpp.json): the
// last-prompt-position logits and the whole greedy continuation, for every case.
#include <algorithm>
#include <cmath>
#include <filesystem>
#include <gtest/gtest.h>

#include "model/forward.h"
#include "model/model.h"
#include "support/shared_data.h"
#include "support/temp_path.h"

using ponder::testing::temp_path;

namespace ponder {
namespace {

using ::ponder::testing::read_json;
using ::ponder::testing::shared_path;

struct RefCase {
  const char* refdata;
  const char* model;
  bool dequantize = false;  // run the model with every Q8_0 tensor dequantized exactly to F32
};

// The model file with every Q8_0 tensor dequantized to F32 (d * q, exact), written to a temp file.
std::string dequantized_copy(const std::string& path) {
  const GgufFile f = read_gguf(path);
  std::vector<std::vector<float>> storage;
  std::vector<GgufTensorData> tensors;
  for (const GgufTensor& t : f.tensors) {
    if (t.type != GgmlType::Q8_0) {
      tensors.push_back({.name = t.name, .ne = t.ne, .type = t.type, .data = t.bytes()});
      continue;
    }
    const WeightView v{.type = t.type, .data = t.data, .n_rows = t.n_elements() / t.ne[0], .n_cols = t.ne[0]};
    std::vector<float>& out = storage.emplace_back(size_t(t.n_elements()));
    for (int64_t r = 0; r < v.n_rows; ++r) dequantize_row(out.data() + r * v.n_cols, v, r);
    tensors.push_back({.name = t.name, .ne = t.ne, .type = GgmlType::F32,
                       .data = {reinterpret_cast<const uint8_t*>(out.data()), out.size() * sizeof(float)}});
  }
  const std::string out_path = temp_path("dequant_f32.gguf");
  write_gguf(out_path, f.metadata, tensors);
  return out_path;
}

class LlamaCppReference : public ::testing::TestWithParam<RefCase> {};

int argmax(const float* x, int n) {
  int best = 0;  // ties go to the lowest id, as the reference does
  for (int i = 1; i < n; ++i)
    if (x[i] > x[best]) best = i;
  return best;
}

TEST_P(LlamaCppReference, LogitsAndGreedyMatch) {
  const RefCase rc = GetParam();
  PONDER_REQUIRE_SHARED(std::string("refdata/") + rc.refdata);
  const nlohmann::json ref = read_json(shared_path(std::string("refdata/") + rc.refdata));
  const std::string model_path = shared_path(std::string("models/") + rc.model);
  const auto model = load_model(rc.dequantize ? dequantized_copy(model_path) : model_path);
  const int V = model->config.n_vocab;
  ASSERT_EQ(V, ref["model"]["n_vocab"].get<int>());

  for (const auto& cs : ref["cases"]) {
    SCOPED_TRACE(cs["name"].get<std::string>());
    const auto prompt = cs["prompt_tokens"].get<std::vector<int32_t>>();
    const auto expect = cs["last_prompt_logits"].get<std::vector<float>>();
    KvPool pool(model->config.n_layer, model->config.kv_dim(), 16, 64);
    KvSeq seq;
    ForwardState st;
    std::vector<float> logits;
    BatchItem item{.seq = &seq, .tokens = prompt, .logits = LogitsFor::Last};
    forward(*model, pool, {&item, 1}, st, logits);
    ASSERT_EQ(logits.size(), size_t(V));
    float max_abs = 0, max_diff = 0;
    for (int i = 0; i < V; ++i) {
      max_abs = std::max(max_abs, std::fabs(expect[size_t(i)]));
      max_diff = std::max(max_diff, std::fabs(expect[size_t(i)] - logits[size_t(i)]));
    }
    EXPECT_LE(max_diff, 1e-3f * max_abs) << "largest |logit| " << max_abs;
    std::printf("[ %s ] %s: max |logit diff| %.3g (bound %.3g)\n", rc.refdata, cs["name"].get<std::string>().c_str(),
                max_diff, 1e-3 * max_abs);

    // Greedy: identical token for token, and the decode-time logits too (llama.cpp runs each
    // of these steps one token at a time). Where the reference's top-1/top-2 margin is below the
    // tolerance the paths may legitimately part: the comparison of this case ends there.
    const float tol = 1e-3f * max_abs;
    const auto& steps = cs["greedy"]["steps"];
    const auto tokens = cs["greedy"]["tokens"].get<std::vector<int32_t>>();
    for (size_t s = 0; s < tokens.size(); ++s) {
      const int got = argmax(logits.data(), V);
      const float margin = steps[s]["margin"].get<float>();
      if (got != tokens[s]) {
        if (margin < tol) break;
        ADD_FAILURE() << "greedy step " << s << ": got " << got << ", llama.cpp " << tokens[s] << " (margin "
                      << margin << ", tolerance " << tol << ")";
        break;
      }
      float step_diff = 0;
      for (const auto& pair : steps[s]["top5"])
        step_diff = std::max(step_diff, std::fabs(logits[pair[0].get<size_t>()] - pair[1].get<float>()));
      EXPECT_LE(step_diff, tol) << "step " << s << ": top-5 logits differ from llama.cpp's";
      const int32_t next = got;
      BatchItem step{.seq = &seq, .tokens = {&next, 1}, .logits = LogitsFor::Last};
      if (s + 1 < tokens.size()) forward(*model, pool, {&step, 1}, st, logits);
    }
  }
}

INSTANTIATE_TEST_SUITE_P(
    Refdata, LlamaCppReference,
    ::testing::Values(RefCase{"stories260K_llamacpp.json", "stories260K.gguf"},
                      RefCase{"tiny_qwen2_llamacpp.json", "tiny-qwen2-random.gguf"},
                      RefCase{"tiny_qwen2_q8_0_llamacpp.json", "tiny-qwen2-random-q8_0.gguf"},
                      RefCase{"tiny_qwen2_q8_0_dequant_f32_llamacpp.json", "tiny-qwen2-random-q8_0.gguf", true},
                      RefCase{"tiny_r1distill_llamacpp.json", "tiny-r1distill-random.gguf"},
                      // models/kq: width 256 (llama, untied) and 384 (qwen2, head size 128, GQA 3:1),
                      // prompts up to 64 tokens and 24 decode steps after them.
                      RefCase{"kq/tiny_llama_kq_llamacpp.json", "kq/tiny-llama-kq.gguf"},
                      RefCase{"kq/tiny_llama_kq_q8_0_llamacpp.json", "kq/tiny-llama-kq-q8_0.gguf"},
                      RefCase{"kq/tiny_qwen2_kq_llamacpp.json", "kq/tiny-qwen2-kq.gguf"},
                      RefCase{"kq/tiny_qwen2_kq_q8_0_llamacpp.json", "kq/tiny-qwen2-kq-q8_0.gguf"},
                      // Q4_1, Q5_0, Q5_1 in llama.cpp's one-row order; IQ4_NL in its 8-row repacked order
                      RefCase{"kq/tiny_qwen2_kq_q4_1_llamacpp.json", "kq/tiny-qwen2-kq-q4_1.gguf"},
                      RefCase{"kq/tiny_qwen2_kq_q5_0_llamacpp.json", "kq/tiny-qwen2-kq-q5_0.gguf"},
                      RefCase{"kq/tiny_qwen2_kq_q5_1_llamacpp.json", "kq/tiny-qwen2-kq-q5_1.gguf"},
                      RefCase{"kq/tiny_qwen2_kq_iq4_nl_llamacpp.json", "kq/tiny-qwen2-kq-iq4_nl.gguf"},
                      // Q6_K, Q5_K (one-row order) and Q4_K (8-row repacked order), alone and mixed
                      RefCase{"kq/tiny_llama_kq_q6_k_llamacpp.json", "kq/tiny-llama-kq-q6_k.gguf"},
                      RefCase{"kq/tiny_llama_kq_q4_k_m_llamacpp.json", "kq/tiny-llama-kq-q4_k_m.gguf"},
                      RefCase{"kq/tiny_llama_kq_q5_k_m_llamacpp.json", "kq/tiny-llama-kq-q5_k_m.gguf"},
                      RefCase{"kq/tiny_llama_kq_q4_0_llamacpp.json", "kq/tiny-llama-kq-q4_0.gguf"},
                      RefCase{"kq/tiny_qwen2_kq_q6_k_llamacpp.json", "kq/tiny-qwen2-kq-q6_k.gguf"},
                      // Q3_K in llama.cpp's one-row order (ffn_down beside Q4_0 and Q8_0; with Q4_K, Q5_K, Q6_K)
                      RefCase{"kq/tiny_qwen2_kq_q2_k_llamacpp.json", "kq/tiny-qwen2-kq-q2_k.gguf"},
                      RefCase{"kq/tiny_llama_kq_q3_k_m_llamacpp.json", "kq/tiny-llama-kq-q3_k_m.gguf"},
                      // Q4_0 in llama.cpp's 8-row repacked order (every matrix here has a multiple of 8 rows)
                      RefCase{"kq/tiny_qwen2_kq_q4_0_llamacpp.json", "kq/tiny-qwen2-kq-q4_0.gguf"},
                      // the rest of the 24 files: every type in every mix llama-quantize makes
                      RefCase{"kq/tiny_llama_kq_iq4_nl_llamacpp.json", "kq/tiny-llama-kq-iq4_nl.gguf"},
                      RefCase{"kq/tiny_llama_kq_iq4_xs_llamacpp.json", "kq/tiny-llama-kq-iq4_xs.gguf"},
                      RefCase{"kq/tiny_llama_kq_q2_k_llamacpp.json", "kq/tiny-llama-kq-q2_k.gguf"},
                      RefCase{"kq/tiny_llama_kq_q4_1_llamacpp.json", "kq/tiny-llama-kq-q4_1.gguf"},
                      RefCase{"kq/tiny_llama_kq_q5_0_llamacpp.json", "kq/tiny-llama-kq-q5_0.gguf"},
                      RefCase{"kq/tiny_llama_kq_q5_1_llamacpp.json", "kq/tiny-llama-kq-q5_1.gguf"},
                      RefCase{"kq/tiny_qwen2_kq_iq4_xs_llamacpp.json", "kq/tiny-qwen2-kq-iq4_xs.gguf"},
                      RefCase{"kq/tiny_qwen2_kq_q3_k_m_llamacpp.json", "kq/tiny-qwen2-kq-q3_k_m.gguf"},
                      RefCase{"kq/tiny_qwen2_kq_q4_k_m_llamacpp.json", "kq/tiny-qwen2-kq-q4_k_m.gguf"},
                      RefCase{"kq/tiny_qwen2_kq_q5_k_m_llamacpp.json", "kq/tiny-qwen2-kq-q5_k_m.gguf"}),
    [](const auto& info) {
      std::string n = info.param.refdata;
      n = n.substr(0, n.find('.'));
      for (char& c : n)
        if (!isalnum(uint8_t(c))) c = '_';
      return n;
    });

}  // namespace
}  // namespace ponder

// The trainer on the GGUF files the engine serves: qwen2 (Q/K/V biases, NeoX RoPE, tied output,
// GQA) and a 152K-token byte-level BPE vocabulary. The training forward of the imported weights
// against the inference engine, the export round trip, and the files the trainer must refuse.
#include <cmath>
#include <filesystem>
#include <gtest/gtest.h>

#include "core/error.h"
#include "kernels/activation.h"
#include "model/forward.h"
#include "support/shared_data.h"
#include "train/engine_logp.h"
#include "train/forward_train.h"
#include "train/model_io.h"

namespace ponder {
namespace {

using ::ponder::testing::engine_logp;

// A sequence of the model's own tokens: the tokenizer's reading of some text, repeated to T.
TrainBatch text_batch(const Tokenizer& tok, int T) {
  const std::vector<int32_t> ids =
      tok.encode("Solve 12 + 35. <think> 12 + 35 = 47, so the answer is 47. </think> The answer is 47.", false, true);
  TrainBatch b{.B = 1, .T = T};
  for (int i = 0; i < T; ++i) b.tokens.push_back(ids[size_t(i) % ids.size()]);
  for (int i = 0; i < T; ++i) b.targets.push_back(i + 1 < T ? b.tokens[size_t(i) + 1] : -1);
  return b;
}

class ImportQwen2 : public ::testing::TestWithParam<const char*> {};

// The imported F32 master weights run through forward_train and through the engine (which reads
// the same weights in place): log-probs within 1e-5 relative (|difference| <= 1e-5 max(1, |logp|);
// these random models put log-probs at -1 to -32, where float32's spacing alone is up to 3.8e-6,
// and the two passes sum in different orders). Against the engine on the file itself (F16
// matrices, multiplied as llama.cpp does: activations rounded to F16) within 5e-3 relative: that
// check does not share the trainer's parameter view, so a tensor imported into the wrong place
// fails it.
TEST_P(ImportQwen2, TrainingLogProbsMatchTheEngine) {
  PONDER_REQUIRE_SHARED(GetParam());
  const GgufFile f = read_gguf(::ponder::testing::shared_path(GetParam()));
  const TrainModel m = import_gguf(f);
  EXPECT_EQ(m.config.arch, "qwen2");
  EXPECT_TRUE(m.config.tied);
  EXPECT_EQ(m.config.n_heads / m.config.n_kv_heads >= 2, true) << "a GQA model";
  const Tokenizer tok = Tokenizer::from_gguf(f);
  const int T = 80;  // more than one attention block of the training forward
  const TrainBatch b = text_batch(tok, T);
  Activations acts;
  std::vector<float> logp;
  forward_train(m, b, acts, logp);

  const std::vector<double> same_weights = engine_logp(*inference_model(m, tok), b);
  const std::vector<double> from_file = engine_logp(*load_model(::ponder::testing::shared_path(GetParam())), b);
  double diff = 0, rel = 0, rel_file = 0, spread = 0;
  for (int t = 0; t + 1 < T; ++t) {
    const double lp = logp[size_t(t)], scale = std::max(1.0, std::fabs(lp));
    diff = std::max(diff, std::fabs(same_weights[size_t(t)] - lp));
    rel = std::max(rel, std::fabs(same_weights[size_t(t)] - lp) / scale);
    rel_file = std::max(rel_file, std::fabs(from_file[size_t(t)] - lp) / scale);
    spread = std::max(spread, std::fabs(lp - logp[0]));
  }
  std::printf("%s: %d positions; against the engine on the same weights max |log-prob difference| %.2e "
              "(relative %.2e), on the file relative %.2e\n", GetParam(), T - 1, diff, rel, rel_file);
  EXPECT_LT(rel, 1e-5);
  EXPECT_LT(rel_file, 5e-3);
  EXPECT_GT(spread, 1e-3) << "the log-probs should vary along the sequence";
}

INSTANTIATE_TEST_SUITE_P(SharedModels, ImportQwen2,
                         ::testing::Values("models/kq/tiny-qwen2-kq.gguf", "models/tiny-r1distill-random.gguf"));

// Import, export as F32, import again: the same config and bitwise the same parameters; the
// exported file is a qwen2 GGUF the engine loads, with the same logits as the trainer's model.
TEST(ImportQwen2Export, RoundTripKeepsArchitectureBiasesAndWeights) {
  const char* rel = "models/kq/tiny-qwen2-kq.gguf";
  PONDER_REQUIRE_SHARED(rel);
  const GgufFile f = read_gguf(::ponder::testing::shared_path(rel));
  const TrainModel m = import_gguf(f);
  const std::string path = ::testing::TempDir() + "/import_roundtrip.gguf";
  export_gguf(m, tokenizer_metadata(f), path);
  const GgufFile g = read_gguf(path);
  EXPECT_EQ(g.get_string("general.architecture"), "qwen2");
  const TrainModel back = import_gguf(g);
  EXPECT_EQ(back.config, m.config);
  EXPECT_EQ(back.params, m.params);
  EXPECT_NO_THROW(g.get_tensor("blk.1.attn_k.bias"));
  const Tokenizer tok = Tokenizer::from_gguf(g);
  const TrainBatch b = text_batch(tok, 24);
  EXPECT_EQ(engine_logp(*load_model(path), b), engine_logp(*inference_model(m, tok), b));
  std::filesystem::remove(path);
}

// A file with a tensor the trainer has no parameter for (an attention output bias) is refused,
// naming the tensor, instead of training without it.
TEST(ImportQwen2Export, RefusesATensorItCannotTrain) {
  const char* rel = "models/kq/tiny-qwen2-kq.gguf";
  PONDER_REQUIRE_SHARED(rel);
  const GgufFile f = read_gguf(::ponder::testing::shared_path(rel));
  std::vector<GgufTensorData> tensors;
  for (const GgufTensor& t : f.tensors)
    tensors.push_back({.name = t.name, .ne = t.ne, .type = t.type, .data = t.bytes()});
  const std::vector<float> bias(384, 0.5f);
  tensors.push_back({.name = "blk.0.attn_output.bias", .ne = {384}, .type = GgmlType::F32,
                     .data = {reinterpret_cast<const uint8_t*>(bias.data()), bias.size() * sizeof(float)}});
  const std::string path = ::testing::TempDir() + "/import_extra_bias.gguf";
  write_gguf(path, f.metadata, tensors);
  try {
    import_gguf(read_gguf(path));
    ADD_FAILURE() << "expected a FormatError";
  } catch (const FormatError& e) {
    EXPECT_NE(std::string(e.what()).find("blk.0.attn_output.bias"), std::string::npos) << e.what();
  }
  std::filesystem::remove(path);
}

}  // namespace
}  // namespace ponder

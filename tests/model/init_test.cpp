// `ponder init` models: what is written reads back identically, has the names, shapes and
// metadata keys of a file written by llama.cpp's own GGUF writer, and runs.
#include <filesystem>
#include <gtest/gtest.h>
#include <set>

#include "core/error.h"
#include "model/forward.h"
#include "model/init.h"
#include "model/model.h"
#include "support/shared_data.h"
#include "support/temp_path.h"

using ponder::testing::temp_path;

namespace ponder {
namespace {

using ::ponder::testing::shared_path;

// qwen2-tiny shapes; the vocab (only copied metadata) defaults to stories260K's 512 tokens to
// keep the embedding small.
InitOptions tiny_options(GgmlType dtype, uint64_t seed, const char* vocab = "models/stories260K.gguf") {
  InitOptions o;
  o.shape = find_preset("qwen2-tiny").shape;
  o.dtype = dtype;
  o.seed = seed;
  o.vocab_path = shared_path(vocab);
  return o;
}

TEST(Init, WrittenModelReadsBackIdentical) {
  PONDER_REQUIRE_SHARED("models/stories260K.gguf");
  for (GgmlType dtype : {GgmlType::F32, GgmlType::F16, GgmlType::BF16, GgmlType::Q8_0}) {
    SCOPED_TRACE(ggml_type_name(uint32_t(dtype)));
    InitOptions o = tiny_options(dtype, 7);
    o.output_path = temp_path("roundtrip.gguf");
    const RandomModel built = build_random_model(o);
    write_random_model(o);
    const GgufFile f = read_gguf(o.output_path);
    ASSERT_EQ(f.tensors.size(), built.tensors.size());
    for (size_t i = 0; i < built.tensors.size(); ++i) {
      const GgufTensor& t = f.tensors[i];
      EXPECT_EQ(t.name, built.tensors[i].name);
      EXPECT_EQ(t.ne, built.tensors[i].ne);
      EXPECT_EQ(t.type, built.tensors[i].type);
      ASSERT_EQ(t.n_bytes, built.tensors[i].data.size());
      EXPECT_TRUE(std::equal(t.bytes().begin(), t.bytes().end(), built.tensors[i].data.begin())) << t.name;
    }
    ASSERT_EQ(f.metadata.size(), built.metadata.size());
    for (size_t i = 0; i < built.metadata.size(); ++i) {
      EXPECT_EQ(f.metadata[i].first, built.metadata[i].first);
      EXPECT_TRUE(f.metadata[i].second == built.metadata[i].second) << built.metadata[i].first;
    }
    std::filesystem::remove(o.output_path);
  }
}

TEST(Init, SameSeedSameBytesOtherSeedOtherBytes) {
  PONDER_REQUIRE_SHARED("models/stories260K.gguf");
  const RandomModel a = build_random_model(tiny_options(GgmlType::F32, 1));
  const RandomModel b = build_random_model(tiny_options(GgmlType::F32, 1));
  const RandomModel c = build_random_model(tiny_options(GgmlType::F32, 2));
  const auto& wa = a.tensors[1].data;  // blk.0.attn_norm.weight
  EXPECT_TRUE(std::equal(wa.begin(), wa.end(), b.tensors[1].data.begin()));
  EXPECT_FALSE(std::equal(wa.begin(), wa.end(), c.tensors[1].data.begin()));
}

// The reference file was written by llama.cpp's gguf-py with the same shapes; ours must carry the
// same tensor names and shapes and the same metadata keys, so llama.cpp loads it the same way.
TEST(Init, SameLayoutAsLlamaCppWrittenFile) {
  PONDER_REQUIRE_SHARED("models/tiny-qwen2-random.gguf");
  const GgufFile ref = read_gguf(shared_path("models/tiny-qwen2-random.gguf"));
  const RandomModel ours = build_random_model(tiny_options(GgmlType::F32, 3, "models/tiny-qwen2-random.gguf"));
  std::set<std::string> ref_keys, our_keys;
  for (const auto& [k, v] : ref.metadata) ref_keys.insert(k);
  for (const auto& [k, v] : ours.metadata) our_keys.insert(k);
  EXPECT_EQ(our_keys, ref_keys);
  ASSERT_EQ(ours.tensors.size(), ref.tensors.size());
  for (const GgufTensorData& t : ours.tensors) {
    const GgufTensor* r = ref.find_tensor(t.name);
    ASSERT_NE(r, nullptr) << t.name;
    EXPECT_EQ(t.ne, r->ne) << t.name;
    if (t.ne.size() == 1) {
      EXPECT_EQ(t.type, GgmlType::F32) << "norms and biases stay F32: " << t.name;
    }
  }
  for (const auto& [k, v] : ref.metadata) {
    if (k.rfind("qwen2.", 0) != 0) continue;
    const auto it = std::find_if(ours.metadata.begin(), ours.metadata.end(), [&](const auto& kv) { return kv.first == k; });
    ASSERT_NE(it, ours.metadata.end()) << k;
    EXPECT_EQ(it->second.type(), v.type()) << k;
  }
}

TEST(Init, EveryPresetShapeLoadsAndRuns) {
  PONDER_REQUIRE_SHARED("models/stories260K.gguf");
  for (const char* preset : {"qwen2-tiny", "llama-tiny"}) {
    for (GgmlType dtype : {GgmlType::F32, GgmlType::Q8_0}) {
      if (dtype == GgmlType::Q8_0 && std::string(preset) == "llama-tiny") continue;  // FFN 172: not Q8_0-able
      SCOPED_TRACE(std::string(preset) + " " + ggml_type_name(uint32_t(dtype)));
      InitOptions o;
      o.shape = find_preset(preset).shape;
      o.dtype = dtype;
      o.vocab_path = shared_path("models/stories260K.gguf");
      o.output_path = temp_path("runs.gguf");
      write_random_model(o);
      const auto m = load_model(o.output_path);
      EXPECT_EQ(m->config.n_layer, o.shape.n_layer);
      EXPECT_EQ(m->config.tied_embeddings, o.shape.tied_embeddings);
      KvPool pool(m->config.n_layer, m->config.kv_dim(), 16, 4);
      KvSeq seq;
      ForwardState st;
      std::vector<float> logits;
      const std::vector<int32_t> tokens = {1, 2, 3};
      BatchItem item{.seq = &seq, .tokens = tokens};
      forward(*m, pool, {&item, 1}, st, logits);
      ASSERT_EQ(logits.size(), size_t(m->config.n_vocab));
      for (float v : logits) ASSERT_TRUE(std::isfinite(v));
      std::filesystem::remove(o.output_path);
    }
  }
}

TEST(Init, BadOptionsAreClearErrors) {
  EXPECT_THROW(
      {
        try {
          find_preset("qwen9");
        } catch (const InvalidArgument& e) {
          EXPECT_NE(std::string(e.what()).find("qwen2-0.5b"), std::string::npos) << e.what();
          throw;
        }
      },
      InvalidArgument);
  InitOptions o;
  o.shape.n_embd = 48;  // not a multiple of 32
  o.shape.n_head = 4;
  o.dtype = GgmlType::Q8_0;
  o.vocab_path = "x.gguf";
  EXPECT_THROW(build_random_model(o), InvalidArgument);
  o.dtype = GgmlType::F32;
  o.vocab_path = "";
  EXPECT_THROW(build_random_model(o), InvalidArgument);
  o.vocab_path = "/nonexistent/vocab.gguf";
  EXPECT_THROW(build_random_model(o), FormatError);
}

}  // namespace
}  // namespace ponder

// Checkpoints are untrusted bytes: every size is checked against the model config before use,
// with a FormatError naming the file and the field; resume mismatches name the differing options.
#include <filesystem>
#include <fstream>
#include <gtest/gtest.h>
#include <iterator>

#include "core/error.h"
#include "train/checkpoint.h"
#include "support/temp_path.h"

using ponder::testing::temp_path;

namespace ponder {
namespace {

const TrainConfig kConfig{.vocab = 8, .dim = 4, .n_layers = 1, .n_heads = 2, .n_kv_heads = 1, .ffn = 8, .ctx = 16};

// Parameters of kConfig counted by hand: token_embd 8x4; one layer of two norms (4 each), q 4x4,
// k and v 2x4, o 4x4, gate, up 8x4 and down 4x8; the output norm 4; tied.
constexpr size_t kParams = 32 + (4 + 16 + 8 + 8 + 16 + 4 + 32 + 32 + 32) + 4;

Checkpoint valid() {
  Checkpoint ck{.kind = "sft", .config = kConfig, .params = std::vector<float>(kParams, 0.1f), .adam = {}, .step = 2,
                .run_options = R"({"kind":"sft","lr":0.002,"steps":10})", .extra = {}, .tokenizer = {}};
  ck.adam.m.assign(kParams, 0.0f);
  ck.adam.v.assign(kParams, 0.0f);
  ck.adam.step = 2;
  return ck;
}

std::string error_of(const Checkpoint& ck, const std::string& name) {
  const std::string path = temp_path(name + ".ck");
  write_checkpoint(path, ck);  // the writer does not judge; the reader must
  try {
    read_checkpoint(path);
  } catch (const FormatError& e) {
    return e.what();
  }
  return "";
}

TEST(CheckpointRead, RoundTrips) {
  const std::string path = temp_path("valid.ck");
  write_checkpoint(path, valid());
  const Checkpoint ck = read_checkpoint(path);
  EXPECT_EQ(ck.params.size(), kParams);
  EXPECT_EQ(ck.adam.m.size(), kParams);
  EXPECT_EQ(ck.step, 2);
  EXPECT_TRUE(ck.config == kConfig);
}

// A qwen2 config round-trips with its architecture, and its parameter count includes the Q/K/V
// biases (4 + 2 + 2 more, by hand); a llama count for it is refused.
TEST(CheckpointRead, Qwen2ConfigRoundTripsWithItsBiases) {
  Checkpoint ck = valid();
  ck.config.arch = "qwen2";
  EXPECT_NE(error_of(ck, "qwen2_short").find(std::to_string(kParams) + " parameters, but its model config has " +
                                             std::to_string(kParams + 8)),
            std::string::npos);
  ck.params.assign(kParams + 8, 0.1f);
  ck.adam.m.assign(kParams + 8, 0.0f);
  ck.adam.v.assign(kParams + 8, 0.0f);
  const std::string path = temp_path("qwen2.ck");
  write_checkpoint(path, ck);
  const Checkpoint back = read_checkpoint(path);
  EXPECT_EQ(back.config.arch, "qwen2");
  EXPECT_TRUE(back.config == ck.config);
  ck.config.arch = "gpt2";
  EXPECT_NE(error_of(ck, "gpt2").find("'gpt2'"), std::string::npos) << error_of(ck, "gpt2");
}

TEST(CheckpointRead, AdamMomentsMustFitTheParameters) {
  Checkpoint m = valid();
  m.adam.m.resize(kParams - 1);
  const std::string e = error_of(m, "short_m");
  EXPECT_NE(e.find("AdamW m holds " + std::to_string(kParams - 1) + " values, expected " + std::to_string(kParams)),
            std::string::npos) << e;
  EXPECT_NE(e.find("short_m.ck"), std::string::npos) << e;
  Checkpoint v = valid();
  v.adam.v.resize(kParams * 2);
  EXPECT_NE(error_of(v, "long_v").find("AdamW v holds"), std::string::npos);
  Checkpoint empty_after_steps = valid();
  empty_after_steps.adam.m.clear();
  empty_after_steps.adam.v.clear();
  EXPECT_NE(error_of(empty_after_steps, "empty_moments").find("AdamW m"), std::string::npos)
      << "moments may only be empty before the first step";
  Checkpoint fresh = valid();
  fresh.adam = {};
  EXPECT_EQ(error_of(fresh, "fresh"), "") << "no optimizer step yet: empty moments are fine";
}

TEST(CheckpointRead, ConfigAndParameterCountsAreChecked) {
  Checkpoint p = valid();
  p.params.pop_back();
  EXPECT_NE(error_of(p, "params").find(std::to_string(kParams - 1) + " parameters, but its model config has " +
                                       std::to_string(kParams)),
            std::string::npos);
  // A config claiming two billion layers with a few parameters: an error, not a huge allocation.
  Checkpoint huge = valid();
  huge.config.n_layers = 2'000'000'000;
  huge.config.vocab = 2'000'000'000;
  EXPECT_NE(error_of(huge, "huge").find("parameters, but its model config has"), std::string::npos);
  Checkpoint bad = valid();
  bad.config.n_heads = 3;
  EXPECT_NE(error_of(bad, "bad_config").find("model config"), std::string::npos) << "a FormatError, not InvalidArgument";
  Checkpoint neg = valid();
  neg.step = -5;
  EXPECT_NE(error_of(neg, "negative").find("negative step"), std::string::npos);
}

TEST(CheckpointRead, EveryTruncationIsAFormatError) {
  const std::string path = temp_path("trunc.ck");
  write_checkpoint(path, valid());
  std::ifstream in(path, std::ios::binary);
  const std::vector<uint8_t> b((std::istreambuf_iterator<char>(in)), {});
  for (size_t n = 0; n < b.size(); n += 7) {
    // Cut the body, then give it a correct checksum: the field sizes must catch it.
    std::vector<uint8_t> cut(b.begin(), b.begin() + ptrdiff_t(std::min(n, b.size() - 8)));
    const uint64_t sum = checkpoint_checksum(cut);
    cut.insert(cut.end(), reinterpret_cast<const uint8_t*>(&sum), reinterpret_cast<const uint8_t*>(&sum) + 8);
    if (cut.size() == b.size()) continue;
    EXPECT_THROW(parse_checkpoint(cut, "cut"), FormatError) << n;
  }
}

TEST(CheckpointOptions, NamesEachDifferingOption) {
  EXPECT_NO_THROW(check_run_options("ck", R"({"lr":0.002,"steps":10})", R"({"steps":10,"lr":0.002})"));
  try {
    check_run_options("out/ck.bin", R"({"kind":"sft","lr":0.0020000000949949026,"steps":10,"batch":4})",
                      R"({"kind":"sft","lr":0.009999999776482582,"steps":12,"batch":4,"max_len":64})");
    FAIL() << "no error";
  } catch (const FormatError& e) {
    const std::string m = e.what();
    EXPECT_NE(m.find("out/ck.bin"), std::string::npos) << m;
    EXPECT_NE(m.find("lr: 0.002 in the checkpoint, 0.01 now"), std::string::npos) << m;
    EXPECT_NE(m.find("steps: 10 in the checkpoint, 12 now"), std::string::npos) << m;
    EXPECT_NE(m.find("max_len: (absent) in the checkpoint, 64 now"), std::string::npos) << m;
    EXPECT_EQ(m.find("batch"), std::string::npos) << "equal options are not listed: " << m;
    EXPECT_EQ(m.find("{"), std::string::npos) << "no JSON dump: " << m;
  }
  EXPECT_THROW(check_run_options("ck", "not json", "{}"), FormatError);
}

}  // namespace
}  // namespace ponder

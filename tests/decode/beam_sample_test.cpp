// Sampling beams (--beam-sample) on a scripted tree where beams die: a beam whose every
// continuation has probability 0, or whose score is excluded, has no continuation to draw, so
// the running set shrinks below num_beams. Every continuation with a non-zero probability is drawn
// at each step (there are fewer than the 2 * num_beams draws), so the result is worked out by hand
// whatever the seed. The model hands back logits in an exactly sized buffer, so an
// AddressSanitizer build catches a read of a logits row that the step did not produce.
#include <cmath>
#include <gtest/gtest.h>
#include <map>

#include "decode/beam.h"
#include "decode/generate.h"
#include "support/scripted_model.h"

namespace ponder {
namespace {

using ::ponder::testing::ScriptedModel;

// The scripted model, its logits copied into a buffer of exactly the rows the step produced.
class ExactLogits : public LanguageModel {
 public:
  explicit ExactLogits(ScriptedModel& m) : m_(m) {}
  int32_t n_vocab() const override { return m_.n_vocab(); }
  std::span<const int32_t> eog_tokens() const override { return m_.eog_tokens(); }
  std::string token_text(int32_t id) const override { return m_.token_text(id); }
  std::vector<int32_t> tokenize(std::string_view text) const override { return m_.tokenize(text); }
  SeqId new_sequence() override { return m_.new_sequence(); }
  SeqId fork(SeqId s) override { return m_.fork(s); }
  void release(SeqId s) override { m_.release(s); }
  int length(SeqId s) const override { return m_.length(s); }
  void step(std::span<const StepInput> inputs, std::vector<float>& logits) override {
    std::vector<float> rows;
    m_.step(inputs, rows);
    logits = std::vector<float>(rows.begin(), rows.end());  // capacity == size
    rows_per_step.push_back(int(rows.size()) / n_vocab());
  }
  std::vector<int> rows_per_step;

 private:
  ScriptedModel& m_;
};

// Tokens 0 EOS, 1 'a', 2 'b'; probabilities per generated prefix, unlisted prefixes end (EOS 1).
ScriptedModel dying_tree() {
  const std::map<std::string, std::vector<double>> tree = {
      {"", {0, 0.6, 0.4}},  {"a", {0, 0.6, 0.4}}, {"b", {0, 0, 1}},
      {"bb", {0, 0, 1}},    {"bbb", {0, 0, 1}},   {"bbbb", {1, 0, 0}}};
  return ScriptedModel({"<eos>", "a", "b"}, [tree](const std::vector<int32_t>& toks) {
    std::string key;
    for (size_t i = 1; i < toks.size(); ++i) key += toks[i] == 1 ? 'a' : toks[i] == 2 ? 'b' : 'E';
    const auto it = tree.find(key);
    return it != tree.end() ? it->second : std::vector<double>{1, 0, 0};
  });
}

std::string spell(const Path& p) {
  std::string s;
  for (int32_t t : p.tokens) s += t == 1 ? 'a' : t == 2 ? 'b' : 'E';
  return s;
}

// 3 beams, length_penalty 1 (scores are mean log-probs), early_stopping false:
// step 1: a -0.511, b -0.916 (2 running: the other beams start excluded, nothing to draw).
// step 2: bb -0.916, aa -1.022, ab -1.427 (3 running).
// step 3: bbb -0.916 runs on; aaE and abE end (ranks 1 and 2 < 3 beams: finished, scores
//   -1.022 / 3 = -0.341 and -1.427 / 3 = -0.476); they stay in the running set excluded.
// step 4: only bbb has a continuation: bbbb (1 running beam, 1 logits row at the next step).
// step 5: bbbbE ends with score -0.916 / 5 = -0.183: [bbbbE, aaE, abE].
// Tokens generated: 2 + 3 + 3 + 1 + 1 = 10, the tree's nodes.
TEST(BeamSample, BeamsThatDieShrinkTheRunningSet) {
  for (uint64_t seed : {1, 2, 3}) {
    ScriptedModel scripted = dying_tree();
    ExactLogits m(scripted);
    const GenerateResult r =
        generate(m, {.prompt = {1},
                     .strategy = BeamOptions{.num_beams = 3, .num_return = 3, .length_penalty = 1.0f,
                                             .do_sample = true, .sampling = {.temperature = 1.0f}, .seed = seed},
                     .stop = {.max_tokens = 10}});
    ASSERT_EQ(r.paths.size(), 3u) << seed;
    EXPECT_EQ(spell(r.paths[0]), "bbbbE");
    EXPECT_EQ(spell(r.paths[1]), "aaE");
    EXPECT_EQ(spell(r.paths[2]), "abE");
    EXPECT_NEAR(r.paths[0].score, std::log(0.4) / 5, 1e-6);
    EXPECT_NEAR(r.paths[1].score, 2 * std::log(0.6) / 3, 1e-6);
    EXPECT_NEAR(r.paths[2].score, (std::log(0.6) + std::log(0.4)) / 3, 1e-6);
    EXPECT_NEAR(r.paths[2].cumulative_logprob, std::log(0.6) + std::log(0.4), 1e-6);
    EXPECT_EQ(r.tokens_generated, 10);
    EXPECT_EQ(m.rows_per_step, (std::vector<int>{1, 2, 3, 3, 1})) << "prefill, then the running beams of steps 1-4";
    EXPECT_EQ(scripted.n_live(), 0) << "every sequence released";
  }
}

// Sampling beams rank by the warped log-probs as transformers' beam sample does: the temperature
// warper divides the log-softmax scores (no renormalization), so at T = 2 a step of probability p
// adds ln(p) / 2 to the beam's score.
TEST(BeamSample, TemperatureWarpsTheRankedLogprobs) {
  ScriptedModel scripted = dying_tree();
  const GenerateResult r = generate(
      scripted, {.prompt = {1},
                 .strategy = BeamOptions{.num_beams = 3, .num_return = 3, .length_penalty = 0.0f, .do_sample = true,
                                         .sampling = {.temperature = 2.0f}, .seed = 7},
                 .stop = {.max_tokens = 10}});
  ASSERT_EQ(r.paths.size(), 3u);
  const double a = std::log(0.6) / 2, b = std::log(0.4) / 2;
  // length_penalty 0: scores are sums. bbbbE: b then four certain tokens; aaE: a a E; abE: a b E.
  EXPECT_EQ(spell(r.paths[0]), "bbbbE");
  EXPECT_NEAR(r.paths[0].score, b, 1e-6);
  EXPECT_EQ(spell(r.paths[1]), "aaE");
  EXPECT_NEAR(r.paths[1].score, 2 * a, 1e-6);
  EXPECT_EQ(spell(r.paths[2]), "abE");
  EXPECT_NEAR(r.paths[2].score, a + b, 1e-6);
}

}  // namespace
}  // namespace ponder

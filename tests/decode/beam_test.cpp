// Beam search against an independent float64 implementation of transformers' rules
// (../shared/refdata/beam_stories260K_reference.json), against exhaustive search on a scripted
// model, and on hand-built trees that separate transformers' early_stopping modes.
#include <cmath>
#include <gtest/gtest.h>
#include <map>

#include "decode/beam.h"
#include "decode/generate.h"
#include "decode/model_runner.h"
#include "support/scripted_model.h"
#include "support/shared_data.h"

namespace ponder {
namespace {

using ::ponder::testing::ScriptedModel;
using ::ponder::testing::read_json;
using ::ponder::testing::shared_path;

EarlyStopping early_stopping_of(const nlohmann::json& j) {
  if (j.is_string()) return EarlyStopping::Never;
  return j.get<bool>() ? EarlyStopping::True : EarlyStopping::False;
}

TEST(Beam, ReproducesTheTransformersReferenceOnStories260K) {
  PONDER_REQUIRE_SHARED("refdata/beam_stories260K_reference.json");
  const auto ref = read_json(shared_path("refdata/beam_stories260K_reference.json"));
  const auto model = load_model(shared_path("models/stories260K.gguf"));
  for (const auto& cs : ref["cases"]) {
    SCOPED_TRACE(cs["name"].get<std::string>());
    const auto prompt = cs["prompt_tokens"].get<std::vector<int32_t>>();
    EXPECT_EQ(model->tokenizer.encode(cs["prompt"].get<std::string>(), true, false), prompt);
    const BeamOptions opt{.num_beams = cs["num_beams"], .num_return = cs["num_return"],
                          .length_penalty = cs["length_penalty"], .early_stopping = early_stopping_of(cs["early_stopping"])};
    const StopOptions stop{.max_tokens = cs["max_new"]};
    ModelRunner runner(*model, kv_positions_for(int64_t(prompt.size()), 1, opt.num_beams, stop.max_tokens));
    const std::vector<Path> paths = beam_search(runner, prompt, opt, stop);
    ASSERT_EQ(paths.size(), cs["paths"].size());
    for (size_t i = 0; i < paths.size(); ++i) {
      const auto& want = cs["paths"][i];
      EXPECT_EQ(paths[i].tokens, want["tokens"].get<std::vector<int32_t>>()) << "path " << i;
      const double score = want["score"], cum = want["cumulative_logprob"];
      EXPECT_NEAR(paths[i].score, score, 1e-4 * std::fabs(score)) << "path " << i;
      EXPECT_NEAR(paths[i].cumulative_logprob, cum, 1e-4 * std::fabs(cum)) << "path " << i;
      // The returned score is the cumulative log-prob over the generated length ** length_penalty.
      EXPECT_NEAR(paths[i].score,
                  paths[i].cumulative_logprob / std::pow(double(paths[i].tokens.size()), double(opt.length_penalty)),
                  1e-9 * std::fabs(paths[i].score));
      double sum = 0;
      for (float lp : paths[i].logprobs) sum += lp;
      EXPECT_NEAR(sum, paths[i].cumulative_logprob, 1e-3);
    }
  }
}

TEST(Beam, OneBeamIsGreedy) {
  PONDER_REQUIRE_SHARED("models/tiny-qwen2-random.gguf");
  for (const char* file : {"models/stories260K.gguf", "models/tiny-qwen2-random.gguf"}) {
    const auto model = load_model(shared_path(file));
    const auto prompt = model->tokenizer.encode("Once upon a time", true, false);
    ModelRunner runner(*model, 256);
    const StopOptions stop{.max_tokens = 40};
    const auto greedy = generate(runner, {.prompt = prompt, .strategy = GreedyOptions{}, .stop = stop});
    const auto beam = generate(runner, {.prompt = prompt, .strategy = BeamOptions{.num_beams = 1, .length_penalty = 0}, .stop = stop});
    ASSERT_EQ(beam.paths.size(), 1u) << file;
    EXPECT_EQ(beam.paths[0].tokens, greedy.paths[0].tokens) << file;
    EXPECT_NEAR(beam.paths[0].cumulative_logprob, greedy.paths[0].cumulative_logprob, 1e-4) << file;
    EXPECT_EQ(runner.pool().n_used(), 0) << "every block returned";
  }
}

// Pseudo-random but fixed next-token probabilities over 3 tokens (EOS, a, b) per history.
std::vector<double> hashed_probs(const std::vector<int32_t>& toks) {
  uint64_t h = 1469598103934665603ull;
  for (int32_t t : toks) h = (h ^ uint64_t(t + 1)) * 1099511628211ull;
  std::vector<double> p(3);
  double sum = 0;
  for (double& x : p) {
    h = h * 6364136223846793005ull + 1442695040888963407ull;
    x = 0.05 + double(h >> 11) * 0x1.0p-53;
    sum += x;
  }
  for (double& x : p) x /= sum;
  return p;
}

// All V^L continuations (each ends at EOS or at the length limit) and the best score among them.
void enumerate(const ScriptedModel::Probs& probs, std::vector<int32_t> prefix, size_t n_prompt, int max_new, double sum,
               double length_penalty, std::pair<double, std::vector<int32_t>>& best) {
  const std::vector<double> p = probs(prefix);
  for (int32_t t = 0; t < 3; ++t) {
    auto seq = prefix;
    seq.push_back(t);
    const double s = sum + std::log(p[size_t(t)]);
    const int len = int(seq.size() - n_prompt);
    if (t == 0 || len == max_new) {
      const double score = s / std::pow(double(len), length_penalty);
      if (score > best.first) best = {score, std::vector<int32_t>(seq.begin() + ptrdiff_t(n_prompt), seq.end())};
    } else {
      enumerate(probs, seq, n_prompt, max_new, s, length_penalty, best);
    }
  }
}

TEST(Beam, WithVToTheLBeamsFindsTheExactBest) {
  for (double lp : {0.0, 1.0, 2.0}) {
    for (int L : {2, 3, 4}) {
      ScriptedModel m({"<eos>", "a", "b"}, hashed_probs);
      const std::vector<int32_t> prompt = {1, 2};
      std::pair<double, std::vector<int32_t>> best{-INFINITY, {}};
      enumerate(hashed_probs, prompt, prompt.size(), L, 0.0, lp, best);
      const int nb = int(std::pow(3, L));
      const auto paths = beam_search(m, prompt, {.num_beams = nb, .num_return = 1, .length_penalty = float(lp),
                                                 .early_stopping = EarlyStopping::Never},
                                     {.max_tokens = L});
      ASSERT_EQ(paths.size(), 1u);
      EXPECT_EQ(paths[0].tokens, best.second) << "L=" << L << " lp=" << lp;
      EXPECT_NEAR(paths[0].score, best.first, 1e-6);
      EXPECT_EQ(m.n_live(), 0) << "every sequence released";
    }
  }
}

// A tree given as explicit probabilities per generated prefix ("" = after the prompt, "a", "ab",
// ...); unlisted prefixes end at once (EOS 0.99). Tokens: 0 EOS, 1 'a', 2 'b'.
ScriptedModel tree_model(std::map<std::string, std::vector<double>> tree) {
  return ScriptedModel({"<eos>", "a", "b"}, [tree](const std::vector<int32_t>& toks) {
    std::string key;
    for (size_t i = 1; i < toks.size(); ++i) key += toks[i] == 1 ? 'a' : toks[i] == 2 ? 'b' : 'E';
    const auto it = tree.find(key);
    return it != tree.end() ? it->second : std::vector<double>{0.99, 0.005, 0.005};
  });
}

std::vector<std::string> texts(const std::vector<Path>& paths) {
  std::vector<std::string> out;
  for (const Path& p : paths) {
    std::string s;
    for (int32_t t : p.tokens) s += t == 1 ? 'a' : t == 2 ? 'b' : 'E';
    out.push_back(s);
  }
  return out;
}

// Worked by hand (2 beams, length_penalty 1, so scores are mean log-probs):
// step 1: E -0.693 (finished, score -0.693), a -1.204, b -1.609 running.
// step 2: aa -1.309 (running), bE -1.660 (rank 1 < 2 beams: finished, score -0.830).
//   Both finished slots are now full. early_stopping=true stops here: [E, bE].
//   early_stopping=false: the best running beam aa scores -1.309 / 2 = -0.654 at the current
//   length, better than the worst finished (-0.830), so it goes on.
// step 3: aaE -1.319 finishes with score -0.440: [aaE, E].
TEST(Beam, EarlyStoppingTrueStopsWhenTheFinishedSetIsFull) {
  const std::map<std::string, std::vector<double>> tree = {
      {"", {0.5, 0.3, 0.2}}, {"a", {0.05, 0.9, 0.05}}, {"b", {0.95, 0.025, 0.025}}, {"aa", {0.99, 0.005, 0.005}}};
  const std::vector<int32_t> prompt = {1};
  for (auto [mode, want] : {std::pair{EarlyStopping::True, std::vector<std::string>{"E", "bE"}},
                            std::pair{EarlyStopping::False, std::vector<std::string>{"aaE", "E"}},
                            std::pair{EarlyStopping::Never, std::vector<std::string>{"aaE", "E"}}}) {
    ScriptedModel m = tree_model(tree);
    const auto paths = beam_search(m, prompt, {.num_beams = 2, .num_return = 2, .length_penalty = 1.0f, .early_stopping = mode},
                                   {.max_tokens = 4});
    EXPECT_EQ(texts(paths), want) << int(mode);
    if (mode == EarlyStopping::True) {
      ASSERT_EQ(paths.size(), 2u);
      EXPECT_NEAR(paths[0].score, std::log(0.5), 1e-6);
      EXPECT_NEAR(paths[1].score, (std::log(0.2) + std::log(0.95)) / 2, 1e-6);
    }
  }
}

// Every step's running beams each produce a token, returned or not: on the tree above 2 beams
// run 2 steps (early_stopping true) or 3 (false), so 4 or 6 tokens, while the returned paths
// hold E + bE = 3 and aaE + E = 4.
TEST(Beam, CountsEveryTokenOfTheRunningBeams) {
  const std::map<std::string, std::vector<double>> tree = {
      {"", {0.5, 0.3, 0.2}}, {"a", {0.05, 0.9, 0.05}}, {"b", {0.95, 0.025, 0.025}}, {"aa", {0.99, 0.005, 0.005}}};
  for (auto [mode, want] : {std::pair{EarlyStopping::True, 4}, std::pair{EarlyStopping::False, 6}}) {
    ScriptedModel m = tree_model(tree);
    const GenerateResult r = generate(m, {.prompt = {1},
                                          .strategy = BeamOptions{.num_beams = 2, .num_return = 2, .length_penalty = 1.0f,
                                                                  .early_stopping = mode},
                                          .stop = {.max_tokens = 4}});
    EXPECT_EQ(r.tokens_generated, want) << int(mode);
    EXPECT_EQ(m.n_steps(), want / 2) << "the prefill, then one step after each search step but the last";
  }
}

// False vs never (2 beams, length_penalty 1, at most 4 new tokens):
// step 1: E -0.105 (finished), a -2.408, b -3.689.
// step 2: aE -2.418 (rank 0: finished, -1.209), bb -3.700 running ... finished full: [E, aE].
//   best running: ab? The running beams are aa (-2.408 + log 0.005) and bb (-3.700): the best is
//   bb at -3.700 / 2 = -1.850 < worst finished -1.209: early_stopping=false stops: [E, aE].
//   never divides by the longest possible length instead: -3.700 / 4 = -0.925 > -1.209, so it
//   goes on: bbb -3.710 -> bbbE -3.720, score -0.930, which beats aE: [E, bbbE].
TEST(Beam, EarlyStoppingNeverKeepsSearchingWhileALongerPathCouldWin) {
  const std::map<std::string, std::vector<double>> tree = {
      {"", {0.9, 0.09, 0.025}},
      {"a", {0.99, 0.005, 0.005}},
      {"b", {0.005, 0.005, 0.99}},
      {"bb", {0.005, 0.005, 0.99}},
      {"bbb", {0.99, 0.005, 0.005}}};
  const std::vector<int32_t> prompt = {1};
  for (auto [mode, want] : {std::pair{EarlyStopping::False, std::vector<std::string>{"E", "aE"}},
                            std::pair{EarlyStopping::Never, std::vector<std::string>{"E", "bbbE"}}}) {
    ScriptedModel m = tree_model(tree);
    const auto paths = beam_search(m, prompt, {.num_beams = 2, .num_return = 2, .length_penalty = 1.0f, .early_stopping = mode},
                                   {.max_tokens = 4});
    EXPECT_EQ(texts(paths), want) << int(mode);
  }
}

// A finished candidate counts only if it ranks within the first num_beams: with 1 beam, an EOS
// ranked second is dropped, and the length limit finishes the running beam instead.
TEST(Beam, EosOutsideTheFirstNumBeamsDoesNotFinish) {
  ScriptedModel m = tree_model({{"", {0.4, 0.6, 0.0}}, {"a", {0.0, 1.0, 0.0}}, {"aa", {0.0, 1.0, 0.0}}});
  const auto paths = beam_search(m, {std::vector<int32_t>{1}}, {.num_beams = 1, .num_return = 1, .length_penalty = 0.0f},
                                 {.max_tokens = 3});
  EXPECT_EQ(texts(paths), std::vector<std::string>{"aaa"});
  EXPECT_EQ(paths[0].finish, FinishReason::Length);
  EXPECT_NEAR(paths[0].cumulative_logprob, std::log(0.6), 1e-6);
}

}  // namespace
}  // namespace ponder

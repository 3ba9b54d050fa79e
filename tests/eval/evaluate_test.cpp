// Evaluation counts every token the engine generated (beams, best-of's unreturned samples), and
// greedy_differences tells a GGUF that is not the trained weights from one that is.
#include <gtest/gtest.h>

#include "eval/evaluate.h"
#include "formats/gguf.h"
#include "model/model.h"
#include "train/char_vocab.h"
#include "train/model_io.h"
#include "support/temp_path.h"

using ponder::testing::temp_path;

namespace ponder {
namespace {

TrainModel random_model(uint64_t seed) {
  // Untied: a random tied model echoes its last token whatever the seed.
  TrainConfig c{.dim = 32, .n_layers = 2, .n_heads = 4, .n_kv_heads = 2, .ffn = 64, .ctx = 128, .tied = false};
  c.vocab = char_tokenizer().n_vocab();
  TrainModel m(c);
  init_params(m, seed);
  return m;
}

std::vector<TaskItem> items(int n) {
  TaskOptions t;
  t.name = "arith";
  t.split = Split::Test;
  return generate_items(t, n);
}

TEST(EvalTokens, BestOfCountsEverySampledPath) {
  const TrainModel m = random_model(1);
  const auto model = inference_model(m, char_tokenizer());
  const auto its = items(3);
  const StopOptions stop{.max_tokens = 12};
  const SamplingOptions warm{.temperature = 1.0f};
  // best-of 8 draws the same 8 paths as sample n=8 with the same seed (which returns them all);
  // it returns one, but generated all eight.
  const EvalResult all = evaluate(*model, its, SampleOptions{.n = 8, .sampling = warm, .seed = 3}, stop);
  const EvalResult best = evaluate(*model, its, BestOfOptions{.n_samples = 8, .n_return = 1, .sampling = warm, .seed = 3}, stop);
  EXPECT_GT(all.tokens_per_problem, 8.0) << "eight paths of at least one token";
  EXPECT_EQ(best.tokens_per_problem, all.tokens_per_problem);
}

TEST(EvalTokens, BeamCountsEveryBeam) {
  const TrainModel m = random_model(2);
  const auto model = inference_model(m, char_tokenizer());
  const auto its = items(3);
  const EvalResult beam =
      evaluate(*model, its, BeamOptions{.num_beams = 4, .num_return = 1, .length_penalty = 1.0f}, {.max_tokens = 12});
  // Four running beams each add a token at every step the returned path took but its last.
  EXPECT_GE(beam.tokens_per_problem, 4 * (beam.mean_tokens - 1)) << "mean returned length " << beam.mean_tokens;
  EXPECT_GT(beam.tokens_per_problem, beam.mean_tokens);
}

TEST(GreedyDifferences, TellsTheTrainedWeightsFromAnotherGguf) {
  const TrainModel trained = random_model(4);
  const std::string same = temp_path("same.gguf"), other = temp_path("other.gguf");
  export_gguf(trained, char_vocab_metadata(), same);
  export_gguf(random_model(5), char_vocab_metadata(), other);
  const auto in_memory = inference_model(trained, char_tokenizer());
  const auto its = items(6);
  EXPECT_TRUE(greedy_differences(*in_memory, *load_model(same), its, {.max_tokens = 16}).empty());
  const auto differ = greedy_differences(*in_memory, *load_model(other), its, {.max_tokens = 16});
  EXPECT_FALSE(differ.empty()) << "another model's greedy completions differ";
}

}  // namespace
}  // namespace ponder

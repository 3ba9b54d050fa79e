// The `ponder` binary end to end: outputs against the reference data, and bad input giving a
// clear message on stderr with a non-zero exit code (never a crash).
#include <array>
#include <cstdio>
#include <filesystem>
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>
#include <sys/wait.h>

#include "support/run_cli.h"
#include "support/shared_data.h"
#include "support/temp_path.h"

using ponder::testing::temp_path;

namespace ponder {
namespace {

using ::ponder::testing::read_json;
using ::ponder::testing::shared_path;

using Result = ::ponder::testing::CliResult;
Result run(const std::string& args) { return ::ponder::testing::run_cli(args); }

std::string model(const char* name) { return shared_path(std::string("models/") + name); }

TEST(Cli, HelpForEveryCommand) {
  for (const char* cmd : {"info", "tokenize", "logits", "generate", "bench", "init"}) {
    const Result r = run(std::string(cmd) + " --help");
    EXPECT_EQ(r.exit_code, 0) << cmd;
    EXPECT_NE(r.out.find(cmd), std::string::npos) << r.out;
    EXPECT_NE(r.out.find("Options"), std::string::npos) << r.out;
  }
}

TEST(Cli, TokenizeIdsMatchLlamaCpp) {
  PONDER_REQUIRE_SHARED("refdata/tiny_r1distill_llamacpp.json");
  const auto ref = read_json(shared_path("refdata/tiny_r1distill_llamacpp.json"));
  const auto& cs = ref["cases"][0];
  const std::string prompt_file = temp_path("cli_prompt.txt");
  std::ofstream(prompt_file, std::ios::binary) << cs["prompt"].get<std::string>();
  const Result r = run("tokenize -m " + model("tiny-r1distill-random.gguf") + " -f " + prompt_file + " --ids");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(nlohmann::json::parse(r.out), cs["prompt_tokens"]);
}

TEST(Cli, LogitsMatchLlamaCpp) {
  PONDER_REQUIRE_SHARED("refdata/stories260K_llamacpp.json");
  const auto ref = read_json(shared_path("refdata/stories260K_llamacpp.json"));
  const auto& cs = ref["cases"][2];
  const Result r = run("logits -m " + model("stories260K.gguf") + " -p '" + cs["prompt"].get<std::string>() + "'");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const auto out = nlohmann::json::parse(r.out);
  EXPECT_EQ(out["tokens"], cs["prompt_tokens"]);
  const auto got = out["logits"].get<std::vector<float>>();
  const auto want = cs["last_prompt_logits"].get<std::vector<float>>();
  ASSERT_EQ(got.size(), want.size());
  for (size_t i = 0; i < got.size(); ++i) ASSERT_NEAR(got[i], want[i], 1e-3) << i;
}

TEST(Cli, GenerateJsonMatchesLlamaCppGreedy) {
  PONDER_REQUIRE_SHARED("refdata/stories260K_llamacpp.json");
  const auto ref = read_json(shared_path("refdata/stories260K_llamacpp.json"));
  const auto& cs = ref["cases"][1];
  const Result r = run("generate -m " + model("stories260K.gguf") + " -p '" + cs["prompt"].get<std::string>() +
                       "' -n 64 --json");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const auto out = nlohmann::json::parse(r.out);
  EXPECT_EQ(out["tokens"], cs["greedy"]["tokens"]);
  EXPECT_NE(r.err.find("tok/s"), std::string::npos) << "speed on stderr";
  // Streaming mode prints the prompt and the same continuation.
  const Result s = run("generate -m " + model("stories260K.gguf") + " -p '" + cs["prompt"].get<std::string>() + "' -n 64");
  ASSERT_EQ(s.exit_code, 0) << s.err;
  EXPECT_NE(s.out.find(out["text"].get<std::string>()), std::string::npos) << s.out;
}

TEST(Cli, InfoDescribesTheModel) {
  PONDER_REQUIRE_SHARED("models/tiny-qwen2-random-q8_0.gguf");
  const Result r = run("info -m " + model("tiny-qwen2-random-q8_0.gguf"));
  ASSERT_EQ(r.exit_code, 0) << r.err;
  for (const char* needle : {"qwen2", "Q8_0", "151936", "tied", "151643"})
    EXPECT_NE(r.out.find(needle), std::string::npos) << needle << " in\n" << r.out;
}

TEST(Cli, BadInputIsAClearErrorNotACrash) {
  PONDER_REQUIRE_SHARED("models/stories260K.gguf");
  const std::string bad_file = temp_path("not_a_model.gguf");
  std::ofstream(bad_file) << "this is not a gguf file";
  struct Case {
    std::string args, needle;
  };
  const std::vector<Case> cases = {
      {"info -m /nonexistent/model.gguf", "/nonexistent/model.gguf"},
      {"info -m " + bad_file, "bad magic"},
      {"generate -m " + model("stories260K.gguf") + " -p hi -n -3", "-n (max new tokens per path) must be >= 0, got -3"},
      {"generate -m " + model("stories260K.gguf") + " -f " + std::filesystem::temp_directory_path().string(), "is a directory"},
      {"tokenize -m " + model("stories260K.gguf") + " -f " + std::filesystem::temp_directory_path().string(), "is a directory"},
      {"generate -m " + model("stories260K.gguf") + " -p hi --strategy sample --temp inf", "--temp must be a finite number, got inf"},
      {"generate -m " + model("stories260K.gguf") + " -p hi --strategy sample --temp nan", "--temp must be a finite number"},
      {"generate -m " + model("stories260K.gguf") + " -p hi -t -2", "-t (threads) must be >= 0"},
      {"generate -m " + model("stories260K.gguf"), "-p"},
      {"generate -m " + model("stories260K.gguf") + " -p a -f b", "exactly one"},
      {"bench -m " + model("stories260K.gguf") + " -p 0", "-p"},
      {"bench --train --preset nope", "nope"},
      {"bench --rollouts", "-m FILE"},
      {"bench --train --rollouts", "at most one"},
      {"bench --rollouts -m " + model("stories260K.gguf") + " --task nope", "nope"},
      {"bench --train --ctx 10000000", "--batch 16 and --ctx 10000000 need"},
      {"bench --rollouts -m " + model("stories260K.gguf") + " --prompts 100000 --group 1000", "1000 paths x 128 new tokens need more KV positions"},
      {"frobnicate", "frobnicate"},
      {"init --preset nope --vocab " + model("stories260K.gguf") + " -o /tmp/x.gguf", "qwen2-0.5b"},
      {"init --preset qwen2-tiny --dtype q4 --vocab " + model("stories260K.gguf") + " -o /tmp/x.gguf", "q4"},
      {"tokenize -m " + model("stories260K.gguf") + " -f /nonexistent/prompt.txt", "/nonexistent/prompt.txt"},
  };
  for (const Case& c : cases) {
    const Result r = run(c.args);
    EXPECT_NE(r.exit_code, 0) << c.args;
    EXPECT_LT(r.exit_code, 128) << "crashed: " << c.args;
    EXPECT_NE((r.err + r.out).find(c.needle), std::string::npos) << c.args << "\nstderr: " << r.err;
    EXPECT_LT(r.err.size(), 400u) << "a short message: " << r.err;
    EXPECT_EQ(r.err.find("basic_"), std::string::npos) << "no library-internal message: " << r.err;
  }
}

// bench --train runs the training step (the loss it reports falls over a few AdamW steps on one
// batch); bench --rollouts finds every batched completion equal to the same path generated alone.
TEST(Cli, BenchTrainAndRollouts) {
  PONDER_REQUIRE_SHARED("models/stories260K.gguf");
  const Result t = run("bench --train --preset tiny --batch 2 --ctx 16 -r 4 --json");
  ASSERT_EQ(t.exit_code, 0) << t.err;
  const auto tj = nlohmann::json::parse(t.out);
  EXPECT_GT(tj["tok_s"].get<double>(), 0);
  EXPECT_LT(tj["last_loss"].get<double>(), tj["first_loss"].get<double>());
  const Result r = run("bench --rollouts -m " + model("stories260K.gguf") + " --prompts 3 --group 4 -n 8 --json");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const auto rj = nlohmann::json::parse(r.out);
  EXPECT_EQ(rj["paths"].get<int>(), 12);
  EXPECT_EQ(rj["identical_paths"].get<int>(), 12);
  EXPECT_EQ(rj["completion_tokens"].get<int>(), 12 * 8);
}

TEST(Cli, InitWritesAModelThatGenerates) {
  PONDER_REQUIRE_SHARED("models/stories260K.gguf");
  const std::string out = temp_path("cli_init.gguf");
  Result r = run("init --preset llama-tiny --vocab " + model("stories260K.gguf") + " --seed 5 -o " + out);
  ASSERT_EQ(r.exit_code, 0) << r.err;
  r = run("generate -m " + out + " -p 'Once upon' -n 8 --json");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(nlohmann::json::parse(r.out)["tokens"].size(), 8u);
  std::filesystem::remove(out);
}

}  // namespace
}  // namespace ponder

namespace ponder {
namespace {

// --chat renders the R1 template; the greedy tokens are llama.cpp's for the same prompt ids.
TEST(CliGenerate, ChatR1MatchesLlamaCpp) {
  PONDER_REQUIRE_SHARED("refdata/tiny_r1distill_llamacpp.json");
  const auto ref = read_json(shared_path("refdata/tiny_r1distill_llamacpp.json"));
  const auto& cs = ref["cases"][1];  // r1_chat_system
  ASSERT_EQ(cs["name"], "r1_chat_system");
  const Result r = run("generate -m " + model("tiny-r1distill-random.gguf") +
                       " --chat --system 'You are a careful assistant.' -p 'Count the letters r in \"strawberry\".' -n 32 --json");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const auto out = nlohmann::json::parse(r.out);
  EXPECT_EQ(out["prompt_tokens"], cs["prompt_tokens"].size());
  EXPECT_EQ(out["paths"][0]["tokens"], cs["greedy"]["tokens"]);
}

TEST(CliGenerate, EveryStrategyPrintsItsPaths) {
  PONDER_REQUIRE_SHARED("models/stories260K.gguf");
  struct Case {
    std::string flags;
    size_t n_paths;
  };
  for (const Case& c : std::vector<Case>{{"--strategy greedy", 1},
                                         {"--strategy sample --num-return 3 --seed 2 --temp 0.9 --top-k 20", 3},
                                         {"--strategy beam --beams 3 --num-return 2 --length-penalty 0.5", 2},
                                         {"--strategy best-of --samples 5 --num-return 2 --top-p 0.9", 2},
                                         {"--strategy vote --samples 4 --min-p 0.05", 4}}) {
    const Result r = run("generate -m " + model("stories260K.gguf") + " -p 'Once upon a time' -n 12 --json " + c.flags);
    ASSERT_EQ(r.exit_code, 0) << c.flags << "\n" << r.err;
    const auto out = nlohmann::json::parse(r.out);
    ASSERT_EQ(out["paths"].size(), c.n_paths) << c.flags;
    for (const auto& p : out["paths"]) {
      for (const char* key : {"tokens", "text", "reasoning", "answer", "logprobs", "cumulative_logprob", "score", "finish_reason"})
        EXPECT_TRUE(p.contains(key)) << key << " in " << c.flags;
      EXPECT_EQ(p["tokens"].size(), p["logprobs"].size());
    }
    EXPECT_TRUE(out.contains("votes"));
  }
}

TEST(CliGenerate, BadStrategyOptionsAreClearErrors) {
  PONDER_REQUIRE_SHARED("models/stories260K.gguf");
  const std::vector<std::pair<std::string, std::string>> cases = {
      {"--strategy beam --beams 2 --num-return 3", "num_return_sequences"},
      {"--strategy sample --top-p 1.5", "top_p"},
      {"--strategy sample --temp -1", "temperature"},
      {"--strategy nucleus", "nucleus"},
      {"--strategy beam --early-stopping sometimes", "sometimes"},
      {"--strategy beam --think-budget 4", "--think-budget is used by --strategy greedy, sample, best-of and vote"},
      {"--strategy sample --logit-bias banana", "banana"},
      {"--chat-format alpaca", "alpaca"},
      {"--chat", "chat-format"},  // stories260K has no chat template
  };
  for (const auto& [flags, needle] : cases) {
    const Result r = run("generate -m " + model("stories260K.gguf") + " -p hi -n 4 " + flags);
    EXPECT_NE(r.exit_code, 0) << flags;
    EXPECT_LT(r.exit_code, 128) << flags;
    EXPECT_NE(r.err.find(needle), std::string::npos) << flags << "\nstderr: " << r.err;
  }
}

}  // namespace
}  // namespace ponder

// `ponder eval` through the binary: the same seed gives the same JSON (timings aside), the table
// has a row per strategy, the plots are written, bad flags are clear errors.
#include <filesystem>
#include <fstream>
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "support/run_cli.h"
#include "support/shared_data.h"

namespace ponder {
namespace {

namespace fs = std::filesystem;
using ::ponder::testing::run_cli;
using ::ponder::testing::slurp;
using ::ponder::testing::temp_path;

// A tiny model trained for a few steps on countdown.
const std::string& tiny_model() {
  static const std::string path = [] {
    const std::string dir = temp_path("cli_eval_model");
    fs::remove_all(dir);
    const auto r = run_cli("train sft --task countdown --preset tiny --steps 3 --batch 4 --eval-count 0 --quiet --out " + dir);
    EXPECT_EQ(r.exit_code, 0) << r.err;
    return dir + "/model.gguf";
  }();
  return path;
}

nlohmann::json without_timings(nlohmann::json j) {
  for (auto& s : j["strategies"]) s.erase("seconds_per_problem");
  return j;
}

TEST(CliEval, SameSeedSameJson) {
  const std::string strategies = "greedy,beam:2,sample:3,best-of:3,vote:3,verify:3,mcts:vote:3";
  auto run = [&](int seed, const std::string& name) {
    const std::string json = temp_path(name + ".json"), plot = temp_path(name + ".svg");
    const auto r = run_cli("eval -m " + tiny_model() + " --task countdown --count 6 -n 24 --seed " + std::to_string(seed) +
                           " --strategies " + strategies + " --step-delim ' ' --json " + json + " --plot " + plot);
    EXPECT_EQ(r.exit_code, 0) << r.err;
    for (const char* row : {"greedy", "beam:2", "sample:3", "best-of:3", "vote:3", "verify:3", "mcts:vote:3"})
      EXPECT_NE(r.out.find(std::string("\n") + row + " "), std::string::npos) << row << " in\n" << r.out;
    EXPECT_TRUE(fs::exists(plot));
    EXPECT_TRUE(fs::exists(temp_path(name + "-seconds.svg")));
    return nlohmann::json::parse(slurp(json));
  };
  const auto a = run(4, "eval_a"), b = run(4, "eval_b"), c = run(5, "eval_c");
  ASSERT_EQ(a["strategies"].size(), 7u);
  EXPECT_EQ(a["strategies"][0]["answers"].size(), 6u);
  EXPECT_EQ(without_timings(a), without_timings(b));
  EXPECT_NE(without_timings(a)["strategies"], without_timings(c)["strategies"]) << "another seed, other samples";
  // MCTS spent at most vote:3's tokens on every problem.
  for (size_t i = 0; i < 6; ++i)
    EXPECT_LE(a["strategies"][6]["tokens"][i].get<int64_t>(), a["strategies"][4]["tokens"][i].get<int64_t>()) << i;
}

// --data: JSONL problems, the first --count of them.
TEST(CliEval, DataFile) {
  const std::string data = temp_path("eval_data.jsonl"), json = temp_path("eval_data.json");
  {
    std::ofstream f(data);
    f << R"({"prompt": "Q: 1+2= A: <think>", "answer": "3"})" "\n"
      << R"({"prompt": "Q: 2+2= A: <think>", "answer": "4"})" "\n"
      << R"({"prompt": "Q: 3+2= A: <think>", "answer": "5"})" "\n";
  }
  const auto r = run_cli("eval -m " + tiny_model() + " --data " + data + " --count 2 -n 8 --strategies greedy,vote:2 --json " + json);
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const auto j = nlohmann::json::parse(slurp(json));
  EXPECT_EQ(j["data"], data);
  EXPECT_EQ(j["count"], 2);
  EXPECT_EQ(j["problems"][1]["answer"], "4");
  EXPECT_EQ(j["strategies"][1]["answers"].size(), 2u);
}

// A model with the R1-Distill template is prompted as ponder trains such models: the question as
// the user turn of the template (decode/item_format.h), not the compact task prompt.
TEST(CliEval, ChatTemplateModelsGetTheirTemplatePrompts) {
  PONDER_REQUIRE_SHARED("models/tiny-r1distill-random.gguf");
  const std::string vocab = ::ponder::testing::shared_path("models/tiny-r1distill-random.gguf");
  const std::string model = temp_path("eval_r1.gguf"), json = temp_path("eval_r1.json");
  ASSERT_EQ(run_cli("init --arch qwen2 --preset qwen2-tiny --vocab " + vocab + " -o " + model).exit_code, 0);
  const auto r = run_cli("eval -m " + model + " --task arith --count 2 -n 2 --strategies greedy --json " + json);
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const auto j = nlohmann::json::parse(slurp(json));
  const std::string prompt = j["problems"][0]["prompt"];
  EXPECT_EQ(prompt.rfind("<｜User｜>What is ", 0), 0u) << prompt;
  EXPECT_TRUE(prompt.ends_with("?<｜Assistant｜><think>\n")) << prompt;
}

TEST(CliEval, BadFlagsAreClearErrors) {
  for (const auto& [args, says] : std::vector<std::pair<std::string, std::string>>{
           {"--task countdown --strategies greedy,wat", "unknown strategy 'wat'"},
           {"--strategies greedy", "exactly one of --task"},
           {"--task countdown --count 0", "--count must be >= 1"},
           {"--task countdown --strategies mcts:10 --expand 0", "expand"},
       }) {
    const auto r = run_cli("eval -m " + tiny_model() + " " + args);
    EXPECT_NE(r.exit_code, 0) << args;
    EXPECT_NE(r.err.find(says), std::string::npos) << args << ": " << r.err;
  }
}

}  // namespace
}  // namespace ponder

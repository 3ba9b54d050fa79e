// The training commands end to end through the `ponder` binary: --data in every command, resume
// messages and errors, the chat template of a trained model, one default difficulty, memory
// errors, and a small demo run.
#include <filesystem>
#include <fstream>
#include <gtest/gtest.h>
#include <iterator>
#include <nlohmann/json.hpp>
#include <sstream>
#include <sys/wait.h>

#include "formats/chat_template.h"
#include "formats/gguf.h"
#include "formats/tokenizer.h"
#include "tasks/task.h"
#include "train/checkpoint.h"
#include "support/temp_path.h"

using ponder::testing::temp_path;

namespace ponder {
namespace {

namespace fs = std::filesystem;

struct Result {
  int exit_code = -1;
  std::string out, err;
};

std::string slurp(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), {});
}

Result run(const std::string& args) {
  const std::string out = temp_path("cli_train_out"), err = temp_path("cli_train_err");
  const std::string cmd = "ulimit -c 0; OMP_NUM_THREADS=2 " + std::string(PONDER_BINARY_DIR) + "/ponder " + args + " >" +
                          out + " 2>" + err;
  const int status = std::system(cmd.c_str());
  return {WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status), slurp(out), slurp(err)};
}

std::string fresh_dir(const std::string& name) {
  const std::string d = temp_path("cli_train_" + name);
  fs::remove_all(d);
  fs::create_directories(d);
  return d;
}

// A tiny model trained for two steps: OUT/model.gguf.
std::string tiny_model(const std::string& dir) {
  const Result r = run("train sft --task arith --preset tiny --steps 2 --batch 4 --eval-count 0 --quiet --out " + dir);
  EXPECT_EQ(r.exit_code, 0) << r.err;
  return dir + "/model.gguf";
}

TEST(CliTrain, DataFileInEveryCommand) {
  const std::string dir = fresh_dir("data");
  const std::string sft_data = dir + "/sft.jsonl", rl_data = dir + "/rl.jsonl";
  Result r = run("task --name arith --count 16 --sft");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  std::ofstream(sft_data) << r.out;
  r = run("task --name arith --count 8");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  std::ofstream(rl_data) << r.out;

  r = run("train sft --data " + sft_data + " --preset tiny --steps 2 --batch 4 --quiet --out " + dir + "/sft");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.out.find("model: " + dir + "/sft/model.gguf"), std::string::npos) << r.out;
  const std::string model = dir + "/sft/model.gguf";
  r = run("train grpo --data " + rl_data + " --model " + model + " --steps 1 --prompts-per-step 2 --num-generations 2 " +
          "--max-completion-length 8 --quiet --out " + dir + "/grpo");
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_TRUE(fs::exists(dir + "/grpo/model.gguf"));
  r = run("sample --data " + rl_data + " --model " + model + " --samples 2 --count 2 --max-tokens 8 -o " + dir + "/s.jsonl");
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_TRUE(fs::exists(dir + "/s.jsonl"));

  // Neither, or both: a clear error.
  r = run("train sft --preset tiny --steps 1 --out " + dir + "/none");
  EXPECT_NE(r.exit_code, 0);
  EXPECT_NE(r.err.find("give exactly one of --task NAME or --data FILE"), std::string::npos) << r.err;
  r = run("sample --task arith --data " + rl_data + " --model " + model + " -o " + dir + "/both.jsonl");
  EXPECT_NE(r.exit_code, 0);
  EXPECT_NE(r.err.find("give exactly one of --task NAME or --data FILE"), std::string::npos) << r.err;
}

// The compact chat template in every trained GGUF renders the task prompts exactly, so
// `generate --chat` gives the model the tokens it was trained on.
TEST(CliTrain, ChatTemplateRendersTheTrainedPrompt) {
  const std::string dir = fresh_dir("chat");
  const std::string model = tiny_model(dir);
  const GgufFile f = read_gguf(model);
  ASSERT_EQ(detect_chat_format(f), ChatFormat::Compact);
  const Tokenizer tok = Tokenizer::from_gguf(f);
  TaskOptions t;
  t.name = "arith";
  for (const TaskItem& item : generate_items(t, 20)) {
    // The prompt is "Q: " + question + " A: <think>"; the user message is the question.
    const std::string question = item.prompt.substr(3, item.prompt.size() - 3 - std::string(" A: <think>").size());
    const std::vector<ChatMessage> messages = {{"user", question}};
    const std::string rendered = render_chat(ChatFormat::Compact, messages, true);
    EXPECT_EQ(rendered, item.prompt);
    EXPECT_EQ(tok.encode(rendered, true, true), tok.encode(item.prompt, true, false)) << item.prompt;
  }
  const TaskItem first = generate_item(t, 0);
  const std::string question = first.prompt.substr(3, first.prompt.size() - 14);
  const Result r = run("generate -m " + model + " --chat -p '" + question + "' -n 4 --json");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const auto j = nlohmann::json::parse(r.out);
  EXPECT_EQ(j["prompt_tokens"], tok.encode(first.prompt, true, false).size());
  const Result text = run("generate -m " + model + " --chat -p '" + question + "' -n 4");
  ASSERT_EQ(text.exit_code, 0) << text.err;
  EXPECT_EQ(text.out.substr(0, first.prompt.size()), first.prompt);
}

// LoRA from the command line: train sft --lora-rank writes the merged model and the adapter; the
// checkpoint exports to either (the base read from the run's --model), generate --lora on the
// base gives the merged model's tokens, and a LoRA run needs a --model.
TEST(CliTrain, LoraRunExportsTheAdapterAndTheMergedModel) {
  const std::string dir = fresh_dir("lora");
  const std::string base = tiny_model(dir + "/base");
  Result r = run("train sft --task arith --model " + base + " --lora-rank 4 --lora-alpha 8 --lora-targets q,v,up " +
                 "--steps 3 --batch 4 --lr 0.02 --eval-count 0 --quiet --out " + dir + "/lora");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.out.find("lora adapter: " + dir + "/lora/lora.gguf"), std::string::npos) << r.out;
  r = run("export --checkpoint " + dir + "/lora/checkpoint.bin --adapter -o " + dir + "/adapter.gguf");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(slurp(dir + "/adapter.gguf"), slurp(dir + "/lora/lora.gguf"));
  r = run("export --checkpoint " + dir + "/lora/checkpoint.bin -o " + dir + "/merged.gguf");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(slurp(dir + "/merged.gguf"), slurp(dir + "/lora/model.gguf"));
  const std::string gen = " -p 'Q: 12+7-3= A: <think>' -n 12 --json";
  const Result merged = run("generate -m " + dir + "/lora/model.gguf" + gen);
  const Result adapted = run("generate -m " + base + " --lora " + dir + "/lora/lora.gguf" + gen);
  ASSERT_EQ(merged.exit_code, 0) << merged.err;
  ASSERT_EQ(adapted.exit_code, 0) << adapted.err;
  EXPECT_EQ(nlohmann::json::parse(merged.out)["tokens"], nlohmann::json::parse(adapted.out)["tokens"]);
  r = run("train sft --task arith --preset tiny --lora-rank 4 --steps 1 --quiet --out " + dir + "/bad");
  EXPECT_NE(r.exit_code, 0);
  EXPECT_NE(r.err.find("--lora-rank adapts a model: give --model FILE"), std::string::npos) << r.err;
  r = run("train sft --task arith --model " + base + " --lora-rank 4 --lora-targets q,x --steps 1 --quiet --out " + dir + "/bad");
  EXPECT_NE(r.exit_code, 0);
  EXPECT_NE(r.err.find("unknown matrix 'x'"), std::string::npos) << r.err;
}

// task, train and demo draw from the same default difficulty.
TEST(CliTrain, OneDefaultDifficulty) {
  TaskOptions t;
  t.name = "arith";
  EXPECT_EQ(task_difficulty(t), 0);
  t.difficulty = 0;
  const auto level0 = generate_items(t, 4);
  const Result r = run("task --name arith --count 4");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  std::istringstream lines(r.out);
  for (const TaskItem& item : level0) {
    std::string line;
    ASSERT_TRUE(std::getline(lines, line));
    EXPECT_EQ(nlohmann::json::parse(line)["prompt"], item.prompt);
  }
  const std::string dir = fresh_dir("difficulty");
  tiny_model(dir);
  const auto options = nlohmann::json::parse(read_checkpoint(dir + "/checkpoint.bin").run_options);
  EXPECT_EQ(options["difficulty"], 0) << "train sft without --difficulty";
  TaskOptions c;
  c.name = "countdown";
  EXPECT_EQ(task_difficulty(c), 1) << "countdown's easiest level";
  EXPECT_EQ(run("task --name countdown --count 1").exit_code, 0);
}

TEST(CliTrain, ResumeSaysWhereAndChecksOptions) {
  const std::string common = "train sft --task arith --preset tiny --steps 10 --save-every 4 --eval-count 0 ";
  const std::string args = common + "--batch 2 --out ";
  const std::string whole = fresh_dir("resume_whole");
  ASSERT_EQ(run(args + whole + " --quiet").exit_code, 0);
  const auto size = fs::file_size(whole + "/checkpoint.bin");
  const std::string dir = fresh_dir("resume");
  // Killed while writing the step-8 checkpoint: the step-4 one remains.
  Result r = run(args + dir + " --quiet --abort-after-bytes " + std::to_string(size + 100));
  ASSERT_NE(r.exit_code, 0);
  ASSERT_EQ(read_checkpoint(dir + "/checkpoint.bin").step, 4);

  r = run(common + "--batch 3 --lr 0.01 --resume --out " + dir);
  EXPECT_NE(r.exit_code, 0);
  EXPECT_NE(r.err.find("lr: 0.002 in the checkpoint, 0.01 now"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("batch: 2 in the checkpoint, 3 now"), std::string::npos) << r.err;
  EXPECT_EQ(r.err.find('{'), std::string::npos) << "names the options, no JSON dump: " << r.err;

  r = run(args + dir + " --resume");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.err.find("sft: resuming from step 4 of 10"), std::string::npos) << r.err;
  EXPECT_EQ(r.err.find(" 1/10 "), std::string::npos) << "the bar starts at step 4: " << r.err;
  EXPECT_NE(r.err.find(" 10/10 "), std::string::npos) << r.err;

  r = run(args + fresh_dir("resume_none") + " --resume");
  EXPECT_NE(r.exit_code, 0);
  EXPECT_NE(r.err.find("--resume: no checkpoint at"), std::string::npos) << r.err;
}

TEST(CliTrain, MemoryTheMachineLacksIsAnErrorNamingTheFlags) {
  const Result r = run("train sft --task arith --preset tiny --steps 1 --batch 1000000 --max-len 200 --quiet --out " +
                       fresh_dir("memory"));
  EXPECT_EQ(r.exit_code, 1) << r.err;
  EXPECT_NE(r.err.find("--batch 1000000"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("--max-len 200"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find(" GiB for a training step"), std::string::npos) << r.err;
  // GRPO: the micro-batch's training pass and the rollouts' KV cache, before anything runs.
  const std::string dir = fresh_dir("memory_grpo");
  const std::string model = tiny_model(dir);
  const Result g = run("train grpo --task arith --model " + model + " --steps 1 --prompts-per-step 4096 " +
                       "--num-generations 1024 --micro-batch 100000 --max-completion-length 200 --quiet --out " + dir);
  EXPECT_EQ(g.exit_code, 1) << g.err;
  for (const char* flag : {"--micro-batch 100000", "--prompts-per-step 4096", "--num-generations 1024",
                           "--max-completion-length 200", " GiB for a training step"})
    EXPECT_NE(g.err.find(flag), std::string::npos) << flag << " in " << g.err;
}

// The demo at a small size: results.json keeps its fields, the exported GGUF matches the trained
// weights, beam search counts every beam's tokens, the plots are drawn.
TEST(CliTrain, SmallDemo) {
  const std::string dir = fresh_dir("demo");
  const Result r = run("demo --preset tiny --sft-steps 4 --grpo-steps 1 --eval-count 3 --out " + dir);
  ASSERT_EQ(r.exit_code, 0) << r.out << r.err;
  const auto j = nlohmann::json::parse(slurp(dir + "/results.json"));
  for (const char* k : {"task", "difficulty", "preset", "sft", "grpo", "strategies", "model",
                        "gguf_greedy_matches_training", "seconds_total"})
    EXPECT_TRUE(j.contains(k)) << k;
  EXPECT_EQ(j["task"], "countdown");
  EXPECT_EQ(j["difficulty"], 1);
  EXPECT_EQ(j["gguf_greedy_matches_training"], true);
  std::vector<std::string> names;
  double vote_tokens = -1, mcts_tokens = -1;
  for (const auto& s : j["strategies"]) {
    names.push_back(s["name"]);
    EXPECT_LE(s["ci95"][0].get<double>(), s["accuracy"].get<double>()) << s;
    EXPECT_GE(s["ci95"][1].get<double>(), s["accuracy"].get<double>()) << s;
    if (s["name"] == "vote8") vote_tokens = s["tokens_per_problem"];
    if (s["name"] == "mcts_vote8") mcts_tokens = s["tokens_per_problem"];
    if (s["name"] == "beam4") {
      EXPECT_GE(s["tokens_per_problem"].get<double>(), 4 * (s["mean_tokens"].get<double>() - 1)) << s;
    }
    if (s["name"] == "best_of8") {
      EXPECT_GE(s["tokens_per_problem"].get<double>(), 8.0) << s;
    }
  }
  EXPECT_EQ(names, (std::vector<std::string>{"greedy", "beam4", "best_of8", "vote8", "verify8", "mcts_vote8"}));
  EXPECT_GT(mcts_tokens, 0);
  EXPECT_LE(mcts_tokens, vote_tokens) << "MCTS runs within vote8's tokens on every problem";
  for (const char* f : {"sft/sft_loss.svg", "sft/sft_eval.svg", "grpo/grpo_reward.svg", "grpo/grpo_length.svg", "tradeoff.svg"})
    EXPECT_TRUE(fs::exists(dir + "/" + f)) << f;
  EXPECT_NE(r.out.find("--chat -p"), std::string::npos) << "says how to ask the model: " << r.out;
}

}  // namespace
}  // namespace ponder

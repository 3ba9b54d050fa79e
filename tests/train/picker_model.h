#pragma once
// A tiny policy for the GRPO and rejection-sampling tests, trained in the test process with the
// training code: to the prompt "Q: pick A: <think>" it answers, about half the time each, with
//   the short path " a </think> <answer> a </answer>" (10 tokens, then EOS), or
//   the long path  " bbbbbbbbbbbb </think> <answer> b </answer>" (21 tokens, then EOS),
// so the rewards of a group vary by construction (item answer "a": the short path scores 1), and a
// completion limit between the two lengths truncates exactly the long path.
#include <filesystem>
#include <fstream>
#include <string>

#include "support/temp_path.h"
#include "tasks/dataset.h"
#include "train/sft.h"

namespace ponder::testing {

inline constexpr const char* kPickPrompt = "Q: pick A: <think>";
inline constexpr const char* kShortPath = " a </think> <answer> a </answer>";
inline constexpr const char* kLongPath = " bbbbbbbbbbbb </think> <answer> b </answer>";
inline constexpr int kShortTokens = 10, kLongTokens = 21;  // without EOS

// Built once per test process (ctest runs each test in its own process).
inline const std::string& picker_model() {
  static const std::string path = [] {
    const std::string dir = temp_path("picker_sft");
    std::filesystem::remove_all(dir);
    std::filesystem::create_directories(dir);
    const std::string data = dir + "/data.jsonl";
    {
      std::ofstream f(data);
      for (const char* c : {kShortPath, kLongPath}) f << sft_json_line({.prompt = kPickPrompt, .completion = c}) << "\n";
    }
    SftOptions o;
    o.task.name.clear();
    o.data_path = data;
    o.preset = "tiny";
    o.steps = 150;
    o.batch_size = 8;
    o.max_len = 64;
    o.adamw.lr = 5e-3f;
    o.warmup = 5;
    o.seed = 3;
    o.save_every = 0;
    o.out_dir = dir;
    o.quiet = true;
    return run_sft(o).model_path;
  }();
  return path;
}

// RL data for the picker: `n` lines of the pick prompt, answers "a" (or alternating "a", "b").
inline std::string picker_rl_data(const std::string& name, int n, bool alternate) {
  const std::string path = temp_path(name + ".jsonl");
  std::ofstream f(path);
  for (int i = 0; i < n; ++i) {
    TaskItem item{.prompt = kPickPrompt, .answer = alternate && i % 2 == 1 ? "b" : "a"};
    f << rl_json_line(item) << "\n";
  }
  return path;
}

}  // namespace ponder::testing

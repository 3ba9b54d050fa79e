// ponder demo: the whole system on one machine in minutes. Trains the built-in model on
// `countdown` (a small SFT cold start, then GRPO), evaluates the held-out split with greedy, beam 4,
// best-of 8 (by log-prob), vote@8 (by count), verify@8 (by the task's verifier) and MCTS at vote@8's
// tokens, prints a table, and writes out/demo/results.json, the metrics, the plots (tradeoff.svg:
// accuracy against tokens per problem) and the GGUF model.
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "app/commands.h"
#include "app/evaluators.h"
#include "core/error.h"
#include "eval/compare.h"
#include "eval/evaluate.h"
#include "eval/training_plots.h"
#include "train/grpo.h"
#include "train/model_io.h"
#include "train/sft.h"

namespace ponder::app {

namespace {

struct DemoArgs {
  std::string out = "out/demo";
  std::string task = "countdown";
  int difficulty = -1;  // the task's default, as every command: countdown 1, three numbers 1..20
                        // (a search: greedy decoding solves a minority, so the strategies differ)
  std::string preset = "small";
  int sft_steps = 700, grpo_steps = 150, eval_count = 200;
  uint64_t seed = 1;
  int threads = 0;
};

double seconds_since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

// The user message that --chat renders into the item's prompt: "Q: 3+7-5= A: <think>" -> "3+7-5=".
std::string chat_question(const TaskItem& item) {
  const std::string& p = item.prompt;
  const std::string head = "Q: ", tail = " A: <think>";
  if (p.size() < head.size() + tail.size() || p.rfind(head, 0) != 0) return p;
  return p.substr(head.size(), p.size() - head.size() - tail.size());
}

void run_demo(const DemoArgs& a) {
  set_threads(a.threads);
  const auto t_all = std::chrono::steady_clock::now();
  std::filesystem::create_directories(a.out);
  TaskOptions task{.name = a.task, .split = Split::Train, .seed = a.seed, .difficulty = a.difficulty};
  validate_task_options(task);
  const int difficulty = task_difficulty(task);

  std::printf("== 1/3 SFT cold start: preset %s on %s (difficulty %d), %d steps\n", a.preset.c_str(), a.task.c_str(),
              difficulty, a.sft_steps);
  SftOptions sft;
  sft.task = task;
  sft.preset = a.preset;
  sft.steps = a.sft_steps;
  sft.batch_size = 32;
  sft.adamw.lr = 3e-3f;
  sft.warmup = 30;
  sft.seed = a.seed;
  sft.out_dir = a.out + "/sft";
  sft.save_every = 100;
  const auto t_sft = std::chrono::steady_clock::now();
  const SftResult s = run_sft(sft, held_out_evaluator(task, a.eval_count, 96));
  write_sft_plots(sft.out_dir);
  const double sft_seconds = seconds_since(t_sft);
  std::printf("   SFT: loss %.3f, held-out greedy accuracy %.3f, format %.3f (%.0f s, %.0f tokens/s)\n", s.final_loss,
              s.eval_accuracy, s.eval_format, sft_seconds, s.tokens_per_second);

  std::printf("== 2/3 GRPO from the SFT model: %d steps, 16 prompts x 8 completions\n", a.grpo_steps);
  GrpoOptions g;
  g.task = task;
  g.model = s.model_path;
  g.steps = a.grpo_steps;
  g.prompts_per_step = 16;
  g.num_generations = 8;
  g.temperature = 0.8f;
  g.max_completion_length = 64;
  g.loss_type = LossType::Dapo;
  g.epsilon_high = 0.28f;
  g.rewards = "accuracy:1,format:0.2";
  g.adamw.lr = 5e-5f;  // fine-tuning: a tenth of SFT's final rate, or the policy drifts
  g.seed = a.seed;
  g.out_dir = a.out + "/grpo";
  // The Evaluator also keeps the greedy completions of the weights in memory at its last call (the
  // end of the run), to compare with the exported GGUF read back.
  TaskOptions test = task;
  test.split = Split::Test;
  const auto items = generate_items(test, a.eval_count);
  const std::span<const TaskItem> check_items = std::span(items).first(std::min<size_t>(items.size(), 20));
  const StopOptions check_stop{.max_tokens = 96};
  std::vector<std::vector<int32_t>> trained_greedy;
  const Evaluator held_out = held_out_evaluator(task, a.eval_count, g.max_completion_length);
  const Evaluator evaluate_grpo = [&](const Model& in_memory, const ItemFormat& format) {
    trained_greedy = greedy_completions(in_memory, check_items, check_stop);
    return held_out ? held_out(in_memory, format) : HeldOutScore{};
  };
  const auto t_grpo = std::chrono::steady_clock::now();
  const GrpoResult r = run_grpo(g, evaluate_grpo);
  write_grpo_plots(g.out_dir);
  const double grpo_seconds = seconds_since(t_grpo);
  double mean_len = 0;
  for (const auto& st : r.steps) mean_len = st.completion_length;
  std::printf("   GRPO: held-out greedy accuracy %.3f, format %.3f (%.0f s, rollouts %.0f%% of the time)\n",
              r.eval_accuracy, r.eval_format, grpo_seconds, 100 * r.rollout_share);

  const std::string model_rel = a.out + "/ponder-" + a.task + ".gguf";
  std::filesystem::copy_file(r.model_path, model_rel, std::filesystem::copy_options::overwrite_existing);

  std::printf("== 3/3 decoding strategies on %d held-out problems\n", a.eval_count);
  const auto model = load_model(model_rel);
  // Every strategy at 8 paths, MCTS at vote8's tokens on each problem. Samples at temperature 0.7:
  // countdown has many ways to a wrong answer and few to the target, so sampled paths disagree
  // and the ways of choosing among them (probability, count, verifier, tree search) differ.
  const SamplingOptions warm{.temperature = 0.7f};
  const StopOptions stop{.max_tokens = 64};
  MctsOptions mcts{.simulations = 8, .expand = 4, .c_puct = 1.0f, .sampling = warm, .rollout_temperature = 0.7f,
                   .step_delim = " ", .seed = a.seed};
  const std::vector<StrategySpec> specs = {
      {"greedy", GreedyOptions{}, ""},
      {"beam4", BeamOptions{.num_beams = 4, .num_return = 1, .length_penalty = 1.0f}, ""},
      {"best_of8", BestOfOptions{.n_samples = 8, .n_return = 1, .sampling = warm, .seed = a.seed}, ""},
      {"vote8", VoteOptions{.n_samples = 8, .sampling = warm, .seed = a.seed}, ""},
      {"verify8", VerifyOptions{.n_samples = 8, .sampling = warm, .seed = a.seed}, ""},
      {"mcts_vote8", mcts, "vote8"},
  };
  nlohmann::json rows = nlohmann::json::array();
  std::printf("\n   %s\n", table_header().c_str());
  const auto compared = compare_strategies(*model, items, specs, stop, [&](const StrategyRow& row) {
    std::printf("   %s\n", table_line(row).c_str());
    std::fflush(stdout);
    const EvalResult& e = row.result;
    rows.push_back({{"name", row.spec.name}, {"accuracy", e.accuracy}, {"ci95", {e.ci_low, e.ci_high}},
                    {"mean_tokens", e.mean_tokens}, {"seconds_per_problem", e.seconds_per_problem},
                    {"tokens_per_problem", e.tokens_per_problem}, {"format_rate", e.format_rate}});
  });
  write_tradeoff_plots(a.out + "/tradeoff.svg", compared, "decoding strategies, " + std::to_string(items.size()) + " held-out problems");
  // The exported GGUF read back against the trained weights in memory (the GRPO Evaluator's copy).
  const bool same = greedy_completions(*model, check_items, check_stop) == trained_greedy;
  const nlohmann::json results = {
      {"task", a.task}, {"difficulty", difficulty}, {"preset", a.preset},
      {"sft", {{"greedy_accuracy", s.eval_accuracy}, {"format_rate", s.eval_format}, {"final_loss", s.final_loss},
               {"steps", a.sft_steps}, {"seconds", sft_seconds}, {"tokens_per_second", s.tokens_per_second}}},
      {"grpo", {{"greedy_accuracy", r.eval_accuracy}, {"format_rate", r.eval_format},
                {"mean_completion_tokens", mean_len}, {"steps", a.grpo_steps}, {"seconds", grpo_seconds},
                {"rollout_share", r.rollout_share}}},
      {"strategies", rows},
      {"model", model_rel},
      {"gguf_greedy_matches_training", same},
      {"seconds_total", seconds_since(t_all)},
  };
  std::ofstream(a.out + "/results.json") << results.dump(2) << "\n";
  std::printf("\n   GGUF model %s (greedy outputs identical to the trained weights: %s)\n", model_rel.c_str(),
              same ? "yes" : "NO");
  std::printf("   results: %s/results.json; plots: %s/tradeoff.svg, %s/sft/sft_loss.svg, %s/grpo/grpo_reward.svg, %s/grpo/grpo_length.svg\n",
              a.out.c_str(), a.out.c_str(), a.out.c_str(), a.out.c_str(), a.out.c_str());
  std::printf("   ask it a question: ponder generate -m %s --chat -p '%s'\n", model_rel.c_str(),
              items.empty() ? "3+7-5=" : chat_question(items[0]).c_str());
  std::printf("   total %.0f s\n", seconds_since(t_all));
}

}  // namespace

void add_demo(CLI::App& app) {
  auto* cmd = app.add_subcommand("demo", "Train a small reasoning model (SFT then GRPO) and compare decoding strategies");
  auto a = std::make_shared<DemoArgs>();
  cmd->add_option("--out", a->out, "output folder (relative paths are kept in results.json)");
  cmd->add_option("--task", a->task, "arith | countdown");
  cmd->add_option("--difficulty", a->difficulty, "task difficulty (default: arith 0, countdown 1)");
  cmd->add_option("--preset", a->preset, "model preset");
  cmd->add_option("--sft-steps", a->sft_steps, "SFT steps");
  cmd->add_option("--grpo-steps", a->grpo_steps, "GRPO steps");
  cmd->add_option("--eval-count", a->eval_count, "held-out problems");
  cmd->add_option("--seed", a->seed, "seed");
  cmd->add_option("-t,--threads", a->threads, "threads (default: all cores)");
  cmd->callback([a] { run_demo(*a); });
}

}  // namespace ponder::app

// ponder: a C++ engine for reasoning language models. Errors from the library become a message on
// stderr and a non-zero exit code here, and only here.
#include <cstdio>
#include <exception>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <omp.h>

#include "app/commands.h"
#include "core/error.h"
#include "train/dist.h"

namespace ponder::app {

std::string read_prompt(const std::string& text, const std::string& file, bool text_given, bool file_given) {
  if (text_given == file_given) throw InvalidArgument("give the prompt with exactly one of -p TEXT or -f FILE");
  if (text_given) return text;
  std::error_code ec;
  if (std::filesystem::is_directory(file, ec)) throw InvalidArgument("-f: '" + file + "' is a directory, expected a text file");
  std::ifstream in(file, std::ios::binary);
  if (!in) throw InvalidArgument("-f: cannot read '" + file + "'");
  try {
    std::string out(std::istreambuf_iterator<char>(in), {});
    if (!in.bad()) return out;
  } catch (const std::exception&) {  // libstdc++ reports a failed read by throwing from the stream buffer
  }
  throw InvalidArgument("-f: error reading '" + file + "'");
}

void set_threads(int threads) {
  if (threads < 0) throw InvalidArgument("-t (threads) must be >= 0 (0: all cores), got " + std::to_string(threads));
  if (threads > 0) omp_set_num_threads(threads);
}

void add_mcts_flags(CLI::App* cmd, MctsOptions& o) {
  o.step_delim = "\\n";
  cmd->add_option("--simulations", o.simulations, "mcts: simulations per committed step");
  cmd->add_option("--expand", o.expand, "mcts: child steps sampled per expansion (K)");
  cmd->add_option("--c-puct", o.c_puct, "mcts: exploration weight of PUCT");
  cmd->add_option("--rollout-temp", o.rollout_temperature, "mcts: temperature of the rollouts (--temp: of the child steps)");
  cmd->add_option("--step-delim", o.step_delim, "mcts: a step ends with this text (\\n, \\t escapes)");
}

std::string unescape_flag(const std::string& text) {
  std::string out;
  for (size_t i = 0; i < text.size(); ++i) {
    if (text[i] != '\\' || i + 1 == text.size()) {
      out += text[i];
      continue;
    }
    const char c = text[++i];
    out += c == 'n' ? '\n' : c == 't' ? '\t' : c;
  }
  return out;
}

void add_task_options(CLI::App* cmd, TaskOptions& task, const std::string& task_help) {
  task.name.clear();  // no default task: --data FILE is the other choice (the commands take exactly one)
  cmd->add_option("--task", task.name, task_help + " (this or --data is required)");
  cmd->add_option("--difficulty", task.difficulty, "task difficulty: arith 0..3, countdown 1..3 (default: arith 0, countdown 1)");
  cmd->add_option("--task-seed", task.seed, "seed of the task generator");
}

}  // namespace ponder::app

int main(int argc, char** argv) {
  CLI::App app{"ponder: decode and train reasoning language models (GGUF Llama/Qwen2 families)"};
  app.require_subcommand(1);
  app.set_help_all_flag("--help-all", "help for every command");
  app.option_defaults()->always_capture_default();  // --help shows every option's default (inherited by commands)
  ponder::app::add_info(app);
  ponder::app::add_tokenize(app);
  ponder::app::add_logits(app);
  ponder::app::add_generate(app);
  ponder::app::add_bench(app);
  ponder::app::add_init(app);
  ponder::app::add_train(app);
  ponder::app::add_export(app);
  ponder::app::add_quantize(app);
  ponder::app::add_sample(app);
  ponder::app::add_demo(app);
  ponder::app::add_eval(app);
  ponder::app::add_task(app);
  ponder::app::add_serve(app);
  std::string known;
  bool is_command = false;
  for (const CLI::App* sub : app.get_subcommands({})) {
    known += " " + sub->get_name();
    if (argc > 1 && sub->get_name() == argv[1]) is_command = true;
  }
  if (argc > 1 && argv[1][0] != '-' && !is_command) {
    std::fprintf(stderr, "ponder: error: unknown command '%s'; commands:%s\n", argv[1], known.c_str());
    return 1;
  }
  // Under mpirun: rank r of R. An error on any rank ends the whole job (no rank waits for a rank
  // that has stopped), naming the rank.
  const auto fail = [](int code, const char* what) {
    const ponder::DistInfo& d = ponder::dist();
    if (d.size > 1) std::fprintf(stderr, "ponder: error (rank %d of %d): %s\n", d.rank, d.size, what);
    else std::fprintf(stderr, "ponder: error: %s\n", what);
    if (d.size > 1) ponder::dist_abort(code);
    ponder::dist_finalize();
    return code;
  };
  try {
    ponder::dist_init(&argc, &argv);
    const bool data_parallel = argc > 2 && std::string(argv[1]) == "train" &&
                               (std::string(argv[2]) == "sft" || std::string(argv[2]) == "grpo");
    if (ponder::dist().size > 1 && !data_parallel)
      throw ponder::InvalidArgument("only `ponder train sft|grpo` runs across MPI ranks; run this command without mpirun");
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    const int code = app.exit(e);
    if (ponder::dist().size > 1 && code != 0) ponder::dist_abort(code);
    ponder::dist_finalize();
    return code;
  } catch (const ponder::FormatError& e) {
    return fail(2, e.what());
  } catch (const std::exception& e) {
    return fail(1, e.what());
  }
  ponder::dist_finalize();
  return 0;
}

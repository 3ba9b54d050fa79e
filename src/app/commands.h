#pragma once
// The `ponder` CLI: each command registers itself on the app (parse -> options -> call).
#include <CLI/CLI.hpp>
#include <map>
#include <string>

#include "decode/options.h"
#include "tasks/task.h"

namespace ponder {
struct Model;
}

namespace ponder::app {

void add_info(CLI::App& app);
void add_tokenize(CLI::App& app);
void add_logits(CLI::App& app);
void add_generate(CLI::App& app);
void add_bench(CLI::App& app);
void add_init(CLI::App& app);
void add_train(CLI::App& app);
void add_export(CLI::App& app);
void add_quantize(CLI::App& app);
void add_sample(CLI::App& app);
void add_demo(CLI::App& app);
void add_eval(CLI::App& app);
void add_task(CLI::App& app);
void add_serve(CLI::App& app);

// Prompt text from -p or the file of -f (exactly one of them); throws InvalidArgument.
std::string read_prompt(const std::string& text, const std::string& file, bool text_given, bool file_given);
// The tree-search flags of generate and eval (--simulations, --expand, --c-puct, --rollout-temp,
// --step-delim), bound to o so that its defaults are the ones shown; --step-delim is kept as typed
// (o.step_delim = "\\n" to start): decode it with unescape_flag before use.
void add_mcts_flags(CLI::App* cmd, MctsOptions& o);
// A flag's text with "\n", "\t" and "\\" escapes decoded (a newline is awkward to type in a shell).
std::string unescape_flag(const std::string& text);
// Sets the OpenMP thread count when threads > 0.
void set_threads(int threads);
// --task, --difficulty and --task-seed of the training and sampling commands. No task is set by
// default (task.name is cleared), so --data FILE works; the commands require one of the two.
void add_task_options(CLI::App* cmd, TaskOptions& task, const std::string& task_help);
// The matmul kernel path of each weight type's matrices on this CPU ("avx512-vnni" or "portable";
// both, joined by '/', when matrices of one type differ), e.g. {Q4_K: avx512-vnni, Q6_K: portable}.
std::map<std::string, std::string> kernel_paths(const Model& m);

}  // namespace ponder::app

// ponder generate: decode a prompt with a strategy (greedy, sample, beam, best-of, vote, mcts),
// streaming text for a single greedy/sampled path, or JSON with every path.
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <nlohmann/json.hpp>

#include "app/commands.h"
#include "core/error.h"
#include "decode/generate.h"
#include "decode/model_runner.h"
#include "formats/chat_template.h"
#include "model/lora_apply.h"
#include "model/model.h"

namespace ponder::app {

namespace {

struct GenerateArgs {
  std::string model, prompt, file, strategy = "greedy", early_stopping = "false", chat_format, system, lora;
  float lora_scale = 1.0f;
  int n_predict = 128, num_return = 1, beams = 4, samples = 0, top_k = 0, think_budget = -1, threads = 0;
  MctsOptions mcts;  // --strategy mcts: the tree-search flags (add_mcts_flags) and --budget-tokens
  float length_penalty = 1.0f, temp = 0.8f, top_p = 1.0f, min_p = 0.0f, repeat_penalty = 1.0f, frequency_penalty = 0,
        presence_penalty = 0;
  uint64_t seed = 0;
  std::vector<std::string> stop, logit_bias;
  bool json = false, no_parse_special = false, chat = false, weighted = false, answer_only = false, beam_sample = false;
};

SamplingOptions sampling_options(const GenerateArgs& a, int32_t n_vocab) {
  SamplingOptions s;
  s.temperature = a.temp;
  s.top_k = a.top_k;
  s.top_p = a.top_p;
  s.min_p = a.min_p;
  s.repetition_penalty = a.repeat_penalty;
  s.frequency_penalty = a.frequency_penalty;
  s.presence_penalty = a.presence_penalty;
  for (const std::string& b : a.logit_bias) {  // ID=BIAS or ID+BIAS / ID-BIAS as llama.cpp
    const size_t at = b.find_first_of("=+-", 1);
    try {
      if (at == std::string::npos) throw std::invalid_argument(b);
      const int32_t id = std::stoi(b.substr(0, at));
      const float bias = std::stof(b[at] == '=' ? b.substr(at + 1) : b.substr(at));
      s.logit_bias.emplace_back(id, bias);
    } catch (const std::exception&) {
      throw InvalidArgument("--logit-bias '" + b + "': expected TOKEN_ID=BIAS, e.g. 15043=-1.5");
    }
  }
  (void)n_vocab;
  return s;
}

void require_finite(const char* flag, float v) {
  if (!std::isfinite(v)) throw InvalidArgument(std::string(flag) + " must be a finite number, got " + std::to_string(v));
}

EarlyStopping parse_early_stopping(const std::string& s) {
  if (s == "true") return EarlyStopping::True;
  if (s == "false") return EarlyStopping::False;
  if (s == "never") return EarlyStopping::Never;
  throw InvalidArgument("--early-stopping '" + s + "': expected true, false or never");
}

bool is_beam(const GenerateArgs& a) { return a.strategy == "beam"; }
bool is_sampled(const GenerateArgs& a) { return a.strategy == "sample" || a.strategy == "best-of" || a.strategy == "vote"; }
bool is_mcts(const GenerateArgs& a) { return a.strategy == "mcts"; }
bool draws_tokens(const GenerateArgs& a) { return is_sampled(a) || is_mcts(a) || (is_beam(a) && a.beam_sample); }

// Which strategies read each strategy flag: a flag given to a strategy that ignores it is an error.
struct FlagRule {
  const char* flag;
  const char* used_by;
  bool (*uses)(const GenerateArgs&);
};
constexpr const char* kDrawers = "--strategy sample, best-of, vote, mcts and beam with --beam-sample";
const FlagRule kFlagRules[] = {
    {"--beams", "--strategy beam", is_beam},
    {"--length-penalty", "--strategy beam", is_beam},
    {"--early-stopping", "--strategy beam", is_beam},
    {"--beam-sample", "--strategy beam", is_beam},
    {"--samples", "--strategy sample, best-of and vote", is_sampled},
    {"--num-return", "--strategy beam, best-of and sample",
     [](const GenerateArgs& a) { return is_beam(a) || a.strategy == "best-of" || a.strategy == "sample"; }},
    {"--weighted", "--strategy vote", [](const GenerateArgs& a) { return a.strategy == "vote"; }},
    {"--answer-only", "--strategy best-of", [](const GenerateArgs& a) { return a.strategy == "best-of"; }},
    {"--temp", kDrawers, draws_tokens},
    {"--top-k", kDrawers, draws_tokens},
    {"--top-p", kDrawers, draws_tokens},
    {"--min-p", kDrawers, draws_tokens},
    {"--seed", kDrawers, draws_tokens},
    {"--repeat-penalty", "--strategy sample, best-of and vote", is_sampled},
    {"--frequency-penalty", "--strategy sample, best-of and vote", is_sampled},
    {"--presence-penalty", "--strategy sample, best-of and vote", is_sampled},
    {"--logit-bias", "--strategy sample, best-of and vote", is_sampled},
    {"--think-budget", "--strategy greedy, sample, best-of and vote", [](const GenerateArgs& a) { return !is_beam(a) && !is_mcts(a); }},
    {"--simulations", "--strategy mcts", is_mcts},
    {"--expand", "--strategy mcts", is_mcts},
    {"--c-puct", "--strategy mcts", is_mcts},
    {"--rollout-temp", "--strategy mcts", is_mcts},
    {"--step-delim", "--strategy mcts", is_mcts},
    {"--budget-tokens", "--strategy mcts", is_mcts},
};

// Throws InvalidArgument for an unknown strategy, a strategy flag the strategy ignores, a number
// that is not finite or a negative -n.
void check_generate_args(const GenerateArgs& a, const CLI::App& cmd) {
  static const char* const names[] = {"greedy", "sample", "beam", "best-of", "vote", "mcts"};
  if (a.strategy == "verify")
    throw InvalidArgument("--strategy verify needs a verifier, which generate has not: use `ponder eval --strategies verify:N` "
                          "with a task or data with answers");
  if (std::find(std::begin(names), std::end(names), a.strategy) == std::end(names))
    throw InvalidArgument("--strategy '" + a.strategy + "': expected greedy, sample, beam, best-of, vote or mcts");
  for (const FlagRule& r : kFlagRules) {
    if (cmd.get_option(r.flag)->count() == 0 || r.uses(a)) continue;
    std::string ignoring = "--strategy " + a.strategy;
    if (is_beam(a) && !a.beam_sample && r.uses == draws_tokens) ignoring += " without --beam-sample";
    std::string msg = std::string(r.flag) + " is used by " + r.used_by + "; " + ignoring + " ignores it";
    if (a.strategy == "greedy" && (r.uses == draws_tokens || (r.uses == is_sampled && r.flag != std::string("--samples"))))
      msg += " (greedy takes the most probable token; --strategy sample --temp 0 is greedy with the sampling options)";
    throw InvalidArgument(msg);
  }
  if (a.strategy == "sample" && cmd.get_option("--samples")->count() > 0 && cmd.get_option("--num-return")->count() > 0 &&
      a.samples != a.num_return)
    throw InvalidArgument("--samples " + std::to_string(a.samples) + " and --num-return " + std::to_string(a.num_return) +
                          " differ: --strategy sample returns every path it samples; give one of them");
  require_finite("--temp", a.temp);
  require_finite("--top-p", a.top_p);
  require_finite("--min-p", a.min_p);
  require_finite("--length-penalty", a.length_penalty);
  require_finite("--repeat-penalty", a.repeat_penalty);
  require_finite("--frequency-penalty", a.frequency_penalty);
  require_finite("--presence-penalty", a.presence_penalty);
  if (a.n_predict < 0) throw InvalidArgument("-n (max new tokens per path) must be >= 0, got " + std::to_string(a.n_predict));
}

// Paths drawn (--samples, or --num-return for sample): 1 for sample, 8 for best-of and vote
// unless given.
int samples_of(const GenerateArgs& a, const CLI::App& cmd) {
  if (a.samples > 0 || cmd.get_option("--samples")->count() > 0) return a.samples;
  if (a.strategy == "sample") return a.num_return;
  return 8;
}

Strategy make_strategy(const GenerateArgs& a, const CLI::App& cmd, int32_t n_vocab) {
  const SamplingOptions s = sampling_options(a, n_vocab);
  const int samples = samples_of(a, cmd);
  if (a.strategy == "greedy") return GreedyOptions{};
  if (a.strategy == "sample") return SampleOptions{.n = samples, .sampling = s, .seed = a.seed};
  if (a.strategy == "beam")
    return BeamOptions{.num_beams = a.beams, .num_return = a.num_return, .length_penalty = a.length_penalty,
                       .early_stopping = parse_early_stopping(a.early_stopping), .do_sample = a.beam_sample,
                       .sampling = s, .seed = a.seed};
  if (a.strategy == "best-of")
    return BestOfOptions{.n_samples = samples, .n_return = a.num_return, .score_answer_only = a.answer_only,
                         .sampling = s, .seed = a.seed};
  if (a.strategy == "mcts") {
    require_finite("--c-puct", a.mcts.c_puct);
    require_finite("--rollout-temp", a.mcts.rollout_temperature);
    MctsOptions m = a.mcts;
    m.sampling = s;
    m.step_delim = unescape_flag(a.mcts.step_delim);
    m.seed = a.seed;
    return m;
  }
  return VoteOptions{.n_samples = samples, .weighted = a.weighted, .sampling = s, .seed = a.seed};
}

nlohmann::json path_json(const Path& p) {
  return {{"index", p.index},
          {"tokens", p.tokens},
          {"text", p.text},
          {"reasoning", p.reasoning},
          {"answer", p.answer},
          {"extracted_answer", p.extracted_answer},
          {"logprobs", p.logprobs},
          {"cumulative_logprob", p.cumulative_logprob},
          {"score", p.score},
          {"finish_reason", finish_reason_name(p.finish)}};
}

void run_generate(const GenerateArgs& a, const CLI::App& cmd, bool text_given, bool file_given) {
  check_generate_args(a, cmd);
  set_threads(a.threads);
  const std::string text = read_prompt(a.prompt, a.file, text_given, file_given);
  const auto m = load_model(a.model);
  if (!a.lora.empty()) apply_lora(*m, a.lora, a.lora_scale);
  const Tokenizer& tok = m->tokenizer;
  std::string prompt_text = text;
  if (a.chat || !a.chat_format.empty()) {
    const ChatFormat fmt = a.chat_format.empty() ? detect_chat_format(m->file) : parse_chat_format(a.chat_format);
    std::vector<ChatMessage> messages;
    if (!a.system.empty()) messages.push_back({"system", a.system});
    messages.push_back({"user", text});
    prompt_text = render_chat(fmt, messages, true);
  }
  GenerateRequest req{.prompt = tok.encode(prompt_text, true, !a.no_parse_special),
                      .strategy = make_strategy(a, cmd, m->config.n_vocab),
                      .stop = {.max_tokens = a.n_predict, .stop = a.stop, .think_budget = a.think_budget}};
  validate(req, m->config.n_vocab);
  // Never past the context the model was trained with: every path stops there ("length").
  const int n_ctx = m->config.n_ctx_train;
  req.stop.max_tokens = max_tokens_within_context(a.n_predict, int64_t(req.prompt.size()), n_ctx);
  if (req.stop.max_tokens < a.n_predict)
    std::fprintf(stderr,
                 "ponder: note: -n %d runs past the model's context of %d positions (%s.context_length) with a "
                 "%zu-token prompt: each path stops after %d new tokens (finish_reason \"length\")\n",
                 a.n_predict, n_ctx, std::string(m->config.arch->name).c_str(), req.prompt.size(), req.stop.max_tokens);
  // One path streams its text as it is generated; several paths (and beams) print at the end.
  const bool stream = !a.json && n_paths(req.strategy) == 1 && a.stop.empty() &&
                      (a.strategy == "greedy" || a.strategy == "sample");
  if (stream) {
    std::fwrite(prompt_text.data(), 1, prompt_text.size(), stdout);
    std::fflush(stdout);
    req.on_token = [&](const Path& path) {
      const int32_t id = path.tokens.back();
      if (tok.is_eog(id)) return;
      const std::string piece = tok.token_to_piece(id, true);
      std::fwrite(piece.data(), 1, piece.size(), stdout);
      std::fflush(stdout);
    };
  }
  ModelRunner runner(*m, kv_positions_for(int64_t(req.prompt.size()), req.strategy, req.stop.max_tokens));
  const auto t0 = std::chrono::steady_clock::now();
  GenerateResult r;
  try {
    r = generate(runner, req);
  } catch (...) {
    if (stream) std::printf("\n");  // end the streamed line before the error
    throw;
  }
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  if (a.json) {
    // "tokens" and "text" of the best path at the top level (the single-path form), then every path.
    nlohmann::json out = {{"strategy", strategy_name(req.strategy)},
                          {"prompt_tokens", req.prompt.size()},
                          {"tokens_generated", r.tokens_generated}};
    if (!r.paths.empty()) {
      out["tokens"] = r.paths[0].tokens;
      out["text"] = r.paths[0].text;
      out["finish_reason"] = finish_reason_name(r.paths[0].finish);
    }
    out["paths"] = nlohmann::json::array();
    for (const Path& p : r.paths) out["paths"].push_back(path_json(p));
    out["votes"] = nlohmann::json::array();
    for (const VoteEntry& v : r.votes) out["votes"].push_back({{"answer", v.answer}, {"count", v.count}, {"weight", v.weight}});
    if (!r.winner.empty()) out["winner"] = r.winner;
    std::printf("%s\n", out.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace).c_str());
  } else if (stream) {
    std::printf("\n");
  } else {
    std::fwrite(prompt_text.data(), 1, prompt_text.size(), stdout);
    for (size_t i = 0; i < r.paths.size(); ++i) {
      if (r.paths.size() > 1) std::printf("\n--- path %zu (score %.4f, %s) ---\n", i, r.paths[i].score, finish_reason_name(r.paths[i].finish));
      std::fwrite(r.paths[i].text.data(), 1, r.paths[i].text.size(), stdout);
    }
    if (!r.winner.empty()) std::printf("\n--- vote winner: %s ---", r.winner.c_str());
    std::printf("\n");
  }
  std::fflush(stdout);  // the text and its newline reach the terminal before the summary on stderr
  // Every token the strategy generated (paths and beams not returned included).
  std::fprintf(stderr, "ponder: %s, prompt %zu tokens, %zu paths, %lld tokens generated in %.3f s (%.1f tok/s)\n",
               strategy_name(req.strategy).c_str(), req.prompt.size(), r.paths.size(), (long long)r.tokens_generated,
               seconds, double(r.tokens_generated) / std::max(seconds, 1e-9));
}

}  // namespace

void add_generate(CLI::App& app) {
  auto* cmd = app.add_subcommand("generate", "Generate with a decoding strategy (greedy, sample, beam, best-of, vote, mcts)");
  auto a = std::make_shared<GenerateArgs>();
  cmd->add_option("-m,--model", a->model, "GGUF model file")->required();
  cmd->add_option("--lora", a->lora, "LoRA adapter GGUF (llama.cpp's format, e.g. from train sft --lora-rank) to apply (default: none)");
  cmd->add_option("--lora-scale", a->lora_scale, "scale of the --lora update (llama.cpp's --lora-scaled)");
  auto* p = cmd->add_option("-p,--prompt", a->prompt, "prompt text (the user message with --chat); this or -f is required");
  auto* f = cmd->add_option("-f,--file", a->file, "file holding the prompt; this or -p is required");
  cmd->add_option("-n,--n-predict,--max-tokens", a->n_predict,
                  "maximum new tokens per path (stops at the model's context length)");
  cmd->add_option("--strategy", a->strategy, "greedy | sample | beam | best-of | vote | mcts");
  add_mcts_flags(cmd, a->mcts);
  cmd->add_option("--budget-tokens", a->mcts.budget_tokens, "mcts: generated tokens in all, every expansion and rollout");
  cmd->add_option("--samples", a->samples, "paths sampled by sample, best-of and vote (default: 1 for sample, 8 for best-of and vote)")
      ->default_str("");
  cmd->add_option("--num-return", a->num_return,
                  "paths returned by beam (num_return_sequences, <= --beams) and best-of (<= --samples); "
                  "for sample the same as --samples");
  cmd->add_option("--beams", a->beams, "beams for --strategy beam (num_beams)");
  cmd->add_option("--length-penalty", a->length_penalty, "beam: score = sum(logprob) / length ** length_penalty");
  cmd->add_option("--early-stopping", a->early_stopping, "beam: true | false | never (transformers)");
  cmd->add_flag("--beam-sample", a->beam_sample, "beam: sample the beams instead of taking the top ones");
  cmd->add_option("--temp", a->temp, "temperature (0: the most probable token); sample, best-of, vote, --beam-sample");
  cmd->add_option("--top-k", a->top_k, "top-k (0: off); sample, best-of, vote, --beam-sample");
  cmd->add_option("--top-p", a->top_p, "top-p / nucleus (1: off); sample, best-of, vote, --beam-sample");
  cmd->add_option("--min-p", a->min_p, "min-p (0: off); sample, best-of, vote, --beam-sample");
  cmd->add_option("--repeat-penalty", a->repeat_penalty, "repetition penalty, Hugging Face rule (1: off); sample, best-of, vote");
  cmd->add_option("--frequency-penalty", a->frequency_penalty, "OpenAI frequency penalty (0: off); sample, best-of, vote");
  cmd->add_option("--presence-penalty", a->presence_penalty, "OpenAI presence penalty (0: off); sample, best-of, vote");
  cmd->add_option("--logit-bias", a->logit_bias, "TOKEN_ID=BIAS, repeatable (default: none); sample, best-of, vote");
  cmd->add_option("--seed", a->seed, "random seed, path i draws from (seed, i); sample, best-of, vote, --beam-sample");
  cmd->add_option("--stop", a->stop, "stop string, repeatable (default: none)");
  cmd->add_option("--think-budget", a->think_budget, "after this many reasoning tokens force </think> (-1: no budget); not beam");
  cmd->add_flag("--chat", a->chat, "apply the model's chat template (the prompt is the user message)");
  cmd->add_option("--chat-format", a->chat_format, "force the chat format: r1 | chatml | compact, implies --chat (default: the model's)");
  cmd->add_option("--system", a->system, "system prompt for --chat (default: none)");
  cmd->add_flag("--weighted", a->weighted, "vote: weigh each path by exp(mean token logprob)");
  cmd->add_flag("--answer-only", a->answer_only, "best-of: score only the answer after </think>");
  cmd->add_flag("--json", a->json, "print every path as JSON");
  cmd->add_flag("--no-parse-special", a->no_parse_special, "treat control-token text as plain text");
  cmd->add_option("-t,--threads", a->threads, "threads (0: all cores)");
  cmd->callback([a, cmd, p, f] { run_generate(*a, *cmd, p->count() > 0, f->count() > 0); });
}

}  // namespace ponder::app

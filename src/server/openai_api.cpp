#include "server/openai_api.h"

#include <algorithm>
#include <cmath>
#include <limits>

#include "core/error.h"
#include "decode/reasoning.h"
#include "tasks/answer.h"
#include "tasks/reward.h"

namespace ponder::server {

using nlohmann::json;

json error_json(const ApiError& e) {
  return {{"error",
           {{"message", e.what()},
            {"type", e.type},
            {"param", e.param.empty() ? json(nullptr) : json(e.param)},
            {"code", e.code.empty() ? json(nullptr) : json(e.code)}}}};
}

std::string dump(const json& j) { return j.dump(-1, ' ', false, json::error_handler_t::replace); }

json parse_body(std::string_view body) {
  try {
    return json::parse(body);
  } catch (const json::exception& e) {  // parse_error, and out_of_range for numbers like 1e99999
    throw ApiError(400, std::string("the request body is not valid JSON: ") + e.what(), "body");
  }
}

namespace {

std::string type_name(const json& v) {
  if (v.is_number_integer()) return "integer";
  if (v.is_number()) return "number";
  return v.type_name();
}

[[noreturn]] void bad(const std::string& field, const std::string& expected, const json& got) {
  std::string shown = dump(got);
  if (shown.size() > 60) shown = shown.substr(0, 57) + "...";
  throw ApiError(400, "'" + field + "' must be " + expected + ", got " + shown + " (" + type_name(got) + ")", field);
}

// A field's value, or nullptr when absent or null (OpenAI's SDKs send null for "not given").
const json* field(const json& obj, const char* name) {
  auto it = obj.find(name);
  if (it == obj.end() || it->is_null()) return nullptr;
  return &*it;
}

double number(const json& obj, const char* name, double def, double lo, double hi, const std::string& range) {
  const json* v = field(obj, name);
  if (!v) return def;
  if (!v->is_number()) bad(name, "a number " + range, *v);
  const double x = v->get<double>();
  if (!(x >= lo && x <= hi)) bad(name, "a number " + range, *v);
  return x;
}

int64_t integer(const json& obj, const char* name, int64_t def, int64_t lo, int64_t hi, const std::string& range) {
  const json* v = field(obj, name);
  if (!v) return def;
  bool whole = v->is_number_integer();
  if (v->is_number_float()) {  // 4.0 is accepted as 4, as Python's SDK may send
    const double d = v->get<double>();
    whole = std::isfinite(d) && d == std::floor(d) && std::fabs(d) < 9e15;
  }
  if (!whole) bad(name, "an integer " + range, *v);
  const int64_t x = v->is_number_float() ? int64_t(v->get<double>())
                    : v->is_number_unsigned() && v->get<uint64_t>() > uint64_t(std::numeric_limits<int64_t>::max())
                        ? std::numeric_limits<int64_t>::max()
                        : v->get<int64_t>();
  if (x < lo || x > hi) bad(name, "an integer " + range, *v);
  return x;
}

bool boolean(const json& obj, const char* name, bool def) {
  const json* v = field(obj, name);
  if (!v) return def;
  if (!v->is_boolean()) bad(name, "true or false", *v);
  return v->get<bool>();
}

std::string string(const json& obj, const char* name, const std::string& def) {
  const json* v = field(obj, name);
  if (!v) return def;
  if (!v->is_string()) bad(name, "a string", *v);
  return v->get<std::string>();
}

// "content": a string, or an array of {"type": "text", "text": ...} parts (joined), or null.
std::string message_content(const json& msg, size_t i) {
  const std::string where = "messages[" + std::to_string(i) + "].content";
  auto it = msg.find("content");
  if (it == msg.end() || it->is_null()) return "";
  if (it->is_string()) return it->get<std::string>();
  if (!it->is_array()) bad(where, "a string or an array of text parts", *it);
  std::string out;
  for (size_t k = 0; k < it->size(); ++k) {
    const json& part = (*it)[k];
    const std::string pw = where + "[" + std::to_string(k) + "]";
    if (!part.is_object()) bad(pw, "an object {\"type\": \"text\", \"text\": ...}", part);
    const std::string type = string(part, "type", "");
    if (type != "text") bad(pw + ".type", "\"text\" (the only content part this model reads)", part.value("type", json(nullptr)));
    const json* text = field(part, "text");
    if (!text || !text->is_string()) bad(pw + ".text", "a string", text ? *text : json(nullptr));
    out += text->get<std::string>();
  }
  return out;
}

std::vector<ChatMessage> parse_messages(const json& body) {
  const json* v = field(body, "messages");
  if (!v) throw ApiError(400, "'messages' is required: an array of {\"role\", \"content\"} objects", "messages");
  if (!v->is_array() || v->empty()) bad("messages", "a non-empty array of {\"role\", \"content\"} objects", *v);
  std::vector<ChatMessage> out;
  for (size_t i = 0; i < v->size(); ++i) {
    const json& m = (*v)[i];
    const std::string where = "messages[" + std::to_string(i) + "]";
    if (!m.is_object()) bad(where, "an object {\"role\", \"content\"}", m);
    const json* role = field(m, "role");
    if (!role || !role->is_string()) bad(where + ".role", "one of \"system\", \"developer\", \"user\", \"assistant\"", role ? *role : json(nullptr));
    std::string r = role->get<std::string>();
    if (r == "developer") r = "system";  // OpenAI's newer name for the system turn
    if (r != "system" && r != "user" && r != "assistant")
      bad(where + ".role", "one of \"system\", \"developer\", \"user\", \"assistant\"", *role);
    out.push_back({r, message_content(m, i)});
  }
  return out;
}

std::vector<std::string> parse_stop(const json& body) {
  const json* v = field(body, "stop");
  if (!v) return {};
  std::vector<std::string> out;
  if (v->is_string()) out.push_back(v->get<std::string>());
  else if (v->is_array() && v->size() <= 16) {
    for (const json& s : *v) {
      if (!s.is_string()) bad("stop", "a string or an array of up to 16 strings", *v);
      out.push_back(s.get<std::string>());
    }
  } else {
    bad("stop", "a string or an array of up to 16 strings", *v);
  }
  for (const std::string& s : out)
    if (s.empty()) bad("stop", "non-empty strings", *v);
  return out;
}

SamplingOptions parse_sampling(const json& body, int32_t n_vocab) {
  SamplingOptions s;
  s.temperature = float(number(body, "temperature", 1.0, 0.0, 2.0, "in [0, 2]"));
  s.top_p = float(number(body, "top_p", 1.0, 0.0, 1.0, "in (0, 1]"));
  if (s.top_p <= 0) bad("top_p", "a number in (0, 1]", body["top_p"]);
  const int64_t top_k = integer(body, "top_k", 0, -1, n_vocab, "in [-1, n_vocab] (-1 or 0: off)");
  s.top_k = top_k < 0 ? 0 : int(top_k);
  s.min_p = float(number(body, "min_p", 0.0, 0.0, 1.0, "in [0, 1]"));
  s.presence_penalty = float(number(body, "presence_penalty", 0.0, -2.0, 2.0, "in [-2, 2]"));
  s.frequency_penalty = float(number(body, "frequency_penalty", 0.0, -2.0, 2.0, "in [-2, 2]"));
  s.repetition_penalty = float(number(body, "repetition_penalty", 1.0, 0.0, 1e9, "> 0"));
  if (s.repetition_penalty <= 0) bad("repetition_penalty", "a number > 0", body["repetition_penalty"]);
  if (const json* lb = field(body, "logit_bias")) {
    if (!lb->is_object()) bad("logit_bias", "an object mapping token ids to biases in [-100, 100]", *lb);
    for (const auto& [key, val] : lb->items()) {
      const std::string where = "logit_bias[\"" + key + "\"]";
      size_t used = 0;
      long long id = -1;
      try {
        id = std::stoll(key, &used);
      } catch (const std::exception&) {
        used = 0;
      }
      if (used != key.size() || key.empty() || id < 0 || id >= n_vocab)
        throw ApiError(400, "'logit_bias' keys must be token ids in [0, " + std::to_string(n_vocab) + "), got \"" + key + "\"",
                       "logit_bias");
      if (!val.is_number() || !(val.get<double>() >= -100 && val.get<double>() <= 100))
        bad(where, "a number in [-100, 100]", val);
      s.logit_bias.emplace_back(int32_t(id), val.get<float>());
    }
  }
  return s;
}

bool plain(const SamplingOptions& s) {
  return s.presence_penalty == 0 && s.frequency_penalty == 0 && s.repetition_penalty == 1.0f && s.logit_bias.empty();
}

EarlyStopping parse_early_stopping(const json& obj) {
  const json* v = field(obj, "early_stopping");
  if (!v) return EarlyStopping::False;
  if (v->is_boolean()) return v->get<bool>() ? EarlyStopping::True : EarlyStopping::False;
  if (v->is_string() && v->get<std::string>() == "never") return EarlyStopping::Never;
  bad("early_stopping", "true, false or \"never\"", *v);
}

Strategy parse_strategy(const json& body, Endpoint ep, int n, const SamplingOptions& s, uint64_t seed) {
  const json* ext = field(body, "ponder");
  if (ext && !ext->is_object()) bad("ponder", "an object {\"strategy\", ...}", *ext);
  const json none = json::object();
  const json& x = ext ? *ext : none;
  const int64_t best_of = ep == Endpoint::Completion ? integer(body, "best_of", n, n, 128, "in [n, 128]") : n;
  const bool beam = boolean(body, "use_beam_search", false);
  std::string name = string(x, "strategy", "");
  if (name.empty()) {
    if (beam) name = "beam";
    else if (best_of > n) name = "best-of";
    else if (s.temperature == 0 && n == 1 && plain(s)) name = "greedy";
    else name = "sample";
  }
  const float length_penalty =
      float(number(x.contains("length_penalty") ? x : body, "length_penalty", 1.0, -1e6, 1e6, "finite"));
  if (name == "greedy") {
    if (n != 1) throw ApiError(400, "'n' must be 1 with the greedy strategy (one path), got " + std::to_string(n), "n");
    return GreedyOptions{};
  }
  if (name == "sample") return SampleOptions{.n = n, .sampling = s, .seed = seed};
  if (name == "beam") {
    const int64_t width = integer(x, "beams", std::max<int64_t>(best_of, n), n, 64, "in [n, 64]");
    SamplingOptions bs;
    bs.temperature = s.temperature;  // used only with do_sample (not offered here)
    if (!plain(s))
      throw ApiError(400, "beam search ranks the model's own probabilities: presence_penalty, frequency_penalty, "
                          "repetition_penalty and logit_bias must be unset", "use_beam_search");
    return BeamOptions{.num_beams = int(width), .num_return = n, .length_penalty = length_penalty,
                       .early_stopping = parse_early_stopping(x.contains("early_stopping") ? x : body),
                       .do_sample = false, .sampling = bs, .seed = seed};
  }
  if (name == "best-of") {
    const int64_t samples = integer(x, "samples", std::max<int64_t>(best_of, ext ? 8 : n), n, 128, "in [n, 128]");
    return BestOfOptions{.n_samples = int(samples), .n_return = n, .score_answer_only = boolean(x, "answer_only", false),
                         .sampling = s, .seed = seed};
  }
  if (name == "vote") {
    const int64_t samples = integer(x, "samples", 8, std::max(n, 1), 128, "in [n, 128]");
    return VoteOptions{.n_samples = int(samples), .weighted = boolean(x, "weighted", false), .sampling = s, .seed = seed};
  }
  if (name == "verify") {
    const int64_t samples = integer(x, "samples", 8, std::max(n, 1), 128, "in [n, 128]");
    return VerifyOptions{.n_samples = int(samples), .sampling = s, .seed = seed};
  }
  if (name == "mcts") {
    if (n != 1) throw ApiError(400, "'n' must be 1 with the mcts strategy (one answer), got " + std::to_string(n), "n");
    MctsOptions m{.simulations = int(integer(x, "simulations", 8, 1, 100000, "in [1, 100000]")),
                  .expand = int(integer(x, "expand", 4, 1, 64, "in [1, 64]")),
                  .c_puct = float(number(x, "c_puct", 1.0, 0, 1e6, "in [0, 1e6]")),
                  .sampling = s,
                  .rollout_temperature = float(number(x, "rollout_temperature", 1.0, 0, 100, "in [0, 100]")),
                  .step_delim = string(x, "step_delim", "\n"),
                  .budget_tokens = integer(x, "budget_tokens", 1024, 1, 1 << 20, "in [1, 1048576]"),
                  .seed = seed};
    return m;
  }
  throw ApiError(400, "'ponder.strategy' must be one of \"greedy\", \"sample\", \"beam\", \"best-of\", \"vote\", "
                      "\"verify\", \"mcts\", got \"" + name + "\"", "ponder.strategy");
}

// The completion's answer as finish_path reads it (decode/reasoning.h final_answer).
std::string final_answer(const std::string& completion) { return final_answer(split_reasoning(completion), completion); }

// "ponder": {"answer": "42"} or {"numbers": [..], "target": N}: the verifier of verify and MCTS,
// 1 when the completion's final_answer is the reference answer (normalized) or a countdown
// expression reaching the target with the numbers, else 0. Empty when neither is given.
Verifier parse_verifier(const json& body) {
  const json* ext = field(body, "ponder");
  if (!ext || !ext->is_object()) return {};
  const json* answer = field(*ext, "answer");
  const json* numbers = field(*ext, "numbers");
  const json* target = field(*ext, "target");
  if (answer && numbers) throw ApiError(400, "give 'ponder.answer' or 'ponder.numbers' with 'ponder.target', not both", "ponder.answer");
  if (answer) {
    if (!answer->is_string() && !answer->is_number()) bad("ponder.answer", "a string or a number", *answer);
    const std::string want = normalize_answer(answer->is_string() ? answer->get<std::string>() : answer->dump());
    return [want](const std::string& completion) {
      const std::string got = final_answer(completion);
      return !got.empty() && got == want ? 1.0 : 0.0;
    };
  }
  if (numbers || target) {
    if (!numbers || !target) throw ApiError(400, "'ponder.numbers' and 'ponder.target' go together", numbers ? "ponder.target" : "ponder.numbers");
    std::vector<int> nums;
    if (!numbers->is_array() || numbers->empty() || numbers->size() > 16) bad("ponder.numbers", "an array of 1 to 16 integers", *numbers);
    for (const json& v : *numbers) {
      if (!v.is_number_integer() || v.get<int64_t>() < -1000000 || v.get<int64_t>() > 1000000)
        bad("ponder.numbers", "integers in [-1e6, 1e6]", v);
      nums.push_back(v.get<int>());
    }
    if (!target->is_number_integer()) bad("ponder.target", "an integer", *target);
    const int64_t t = target->get<int64_t>();
    return [nums, t](const std::string& completion) { return check_countdown(final_answer(completion), nums, t) ? 1.0 : 0.0; };
  }
  return {};
}

bool ends_with_open_think(const std::string& prompt) {
  size_t end = prompt.size();
  while (end > 0 && (prompt[end - 1] == '\n' || prompt[end - 1] == ' ')) --end;
  return std::string_view(prompt).substr(0, end).ends_with("<think>");
}

}  // namespace

ApiRequest parse_request(Endpoint ep, const json& body, const ServedModel& m, uint64_t random_seed) {
  if (!body.is_object()) bad("body", "a JSON object", body);
  const Tokenizer& tok = m.model->tokenizer;
  const int32_t n_vocab = m.model->config.n_vocab;
  ApiRequest q;
  q.endpoint = ep;
  if (const json* model = field(body, "model"); model && !model->is_string()) bad("model", "a string", *model);

  // The prompt.
  if (ep == Endpoint::Chat) {
    if (!m.chat_format)
      throw ApiError(400, "this model's GGUF has no chat template ponder knows (tokenizer.chat_template): use "
                          "/v1/completions with a prompt", "messages");
    const std::vector<ChatMessage> messages = parse_messages(body);
    q.prompt_text = render_chat(*m.chat_format, messages, true);
    q.generate.prompt = tok.encode(q.prompt_text, true, true);
    q.reasoning_open = ends_with_open_think(q.prompt_text);
  } else {
    const json* p = field(body, "prompt");
    if (!p) throw ApiError(400, "'prompt' is required: a string or an array of token ids", "prompt");
    if (p->is_array() && p->size() == 1 && (*p)[0].is_string()) p = &(*p)[0];
    if (p->is_string()) {
      q.prompt_text = p->get<std::string>();
      q.generate.prompt = tok.encode(q.prompt_text, true, true);
    } else if (p->is_array() && !p->empty() && std::all_of(p->begin(), p->end(), [](const json& t) { return t.is_number_integer(); })) {
      for (const json& t : *p) {
        const int64_t id = t.get<int64_t>();
        if (id < 0 || id >= n_vocab)
          throw ApiError(400, "'prompt' token ids must be in [0, " + std::to_string(n_vocab) + "), got " + std::to_string(id), "prompt");
        q.generate.prompt.push_back(int32_t(id));
      }
    } else if (p->is_array() && !p->empty() && p->at(0).is_string()) {
      throw ApiError(400, "'prompt' holds " + std::to_string(p->size()) + " prompts: send one prompt per request", "prompt");
    } else {
      bad("prompt", "a string or a non-empty array of token ids", *p);
    }
  }
  if (q.generate.prompt.empty()) throw ApiError(400, "the prompt has no tokens", ep == Endpoint::Chat ? "messages" : "prompt");
  const int64_t prompt_len = int64_t(q.generate.prompt.size());
  if (prompt_len >= m.n_ctx)
    throw ApiError(400, "the prompt has " + std::to_string(prompt_len) + " tokens and this server's context is " +
                            std::to_string(m.n_ctx) + " positions (prompt and completion): shorten the prompt",
                   ep == Endpoint::Chat ? "messages" : "prompt", "invalid_request_error", "context_length_exceeded");

  // Lengths and stops.
  const int64_t room = m.n_ctx - prompt_len;
  const char* max_name = field(body, "max_completion_tokens") ? "max_completion_tokens" : "max_tokens";
  const int64_t max_tokens = integer(body, max_name, room, 1, std::numeric_limits<int32_t>::max(), ">= 1");
  q.generate.stop.max_tokens = int(std::min(max_tokens, room));
  q.generate.stop.stop = parse_stop(body);
  q.generate.stop.think_budget = int(integer(body, "thinking_token_budget", -1, 0, std::numeric_limits<int32_t>::max(), ">= 0"));

  // Output shape.
  q.stream = boolean(body, "stream", false);
  if (const json* so = field(body, "stream_options")) {
    if (!so->is_object()) bad("stream_options", "an object {\"include_usage\": bool}", *so);
    if (!q.stream) throw ApiError(400, "'stream_options' is only allowed with \"stream\": true", "stream_options");
    q.include_usage = boolean(*so, "include_usage", false);
  }
  if (ep == Endpoint::Chat) {
    q.logprobs = boolean(body, "logprobs", false);
    q.generate.top_logprobs = int(integer(body, "top_logprobs", 0, 0, 20, "in [0, 20]"));
    if (q.generate.top_logprobs > 0 && !q.logprobs)
      throw ApiError(400, "'top_logprobs' needs \"logprobs\": true", "top_logprobs");
  } else {
    const json* lp = field(body, "logprobs");
    if (lp) {
      q.logprobs = true;
      q.generate.top_logprobs = int(integer(body, "logprobs", 0, 0, 5, "in [0, 5]"));
    }
  }
  if (const json* echo = field(body, "echo"); echo && echo->is_boolean() && echo->get<bool>())
    throw ApiError(400, "'echo' is not supported: the response holds the completion only", "echo");

  // Strategy.
  q.n_choices = int(integer(body, "n", 1, 1, 128, "in [1, 128]"));
  const SamplingOptions sampling = parse_sampling(body, n_vocab);
  const json* seed = field(body, "seed");
  q.seed = seed ? uint64_t(integer(body, "seed", 0, std::numeric_limits<int64_t>::min(), std::numeric_limits<int64_t>::max(), "(64-bit)"))
                : random_seed;
  q.generate.strategy = parse_strategy(body, ep, q.n_choices, sampling, q.seed);
  q.generate.verifier = parse_verifier(body);
  if (std::holds_alternative<VoteOptions>(q.generate.strategy))
    q.n_choices = std::min(q.n_choices, std::get<VoteOptions>(q.generate.strategy).n_samples);
  if (std::holds_alternative<VerifyOptions>(q.generate.strategy))
    q.n_choices = std::min(q.n_choices, std::get<VerifyOptions>(q.generate.strategy).n_samples);
  try {
    validate(q.generate, n_vocab);
  } catch (const InvalidArgument& e) {
    throw ApiError(400, e.what());
  }
  return q;
}

// ---- responses ----

namespace {

const char* finish_reason(FinishReason r) { return r == FinishReason::Length ? "length" : "stop"; }

json bytes_of(const std::string& s) {
  json b = json::array();
  for (unsigned char c : s) b.push_back(int(c));
  return b;
}

// The generated tokens that are shown (not an end-of-generation token).
size_t shown_tokens(const Path& p, const Tokenizer& tok) {
  size_t n = p.tokens.size();
  while (n > 0 && tok.is_eog(p.tokens[n - 1])) --n;
  return n;
}

}  // namespace

json logprobs_json(const ApiRequest& q, const Tokenizer& tok, std::span<const int32_t> tokens, std::span<const float> lps,
                   std::span<const std::vector<std::pair<int32_t, float>>> tops, size_t text_offset) {
  if (q.endpoint == Endpoint::Chat) {
    json content = json::array();
    for (size_t i = 0; i < tokens.size(); ++i) {
      const std::string piece = tok.token_to_piece(tokens[i], true);
      json top = json::array();
      if (i < tops.size())
        for (const auto& [id, lp] : tops[i]) {
          const std::string t = tok.token_to_piece(id, true);
          top.push_back({{"token", t}, {"logprob", lp}, {"bytes", bytes_of(t)}});
        }
      content.push_back({{"token", piece}, {"logprob", lps[i]}, {"bytes", bytes_of(piece)}, {"top_logprobs", top}});
    }
    return {{"content", content}};
  }
  json pieces = json::array(), values = json::array(), top_maps = json::array(), offsets = json::array();
  for (size_t i = 0; i < tokens.size(); ++i) {
    const std::string piece = tok.token_to_piece(tokens[i], true);
    pieces.push_back(piece);
    values.push_back(lps[i]);
    offsets.push_back(text_offset);
    text_offset += piece.size();
    json top = json::object();
    if (i < tops.size())
      for (const auto& [id, lp] : tops[i]) top[tok.token_to_piece(id, true)] = lp;
    top_maps.push_back(top);
  }
  return {{"tokens", pieces}, {"token_logprobs", values}, {"top_logprobs", top_maps}, {"text_offset", offsets}};
}

namespace {

// The shown tokens' log-probs of a whole path.
json path_logprobs(const ApiRequest& q, const Path& p, const Tokenizer& tok) {
  const size_t n = std::min(shown_tokens(p, tok), p.logprobs.size());
  return logprobs_json(q, tok, std::span(p.tokens).first(n), std::span(p.logprobs).first(n),
                       std::span(p.top_logprobs).first(std::min(n, p.top_logprobs.size())), 0);
}

// Tokens up to and including the one that closes the reasoning (all of them when it stays open).
int64_t reasoning_tokens(const Path& p, const Tokenizer& tok) {
  std::string text;
  for (size_t i = 0; i < p.tokens.size(); ++i) {
    text += tok.token_to_piece(p.tokens[i], true);
    if (text.find("</think>") != std::string::npos) return int64_t(i + 1);
  }
  return int64_t(p.tokens.size());
}

json ponder_json(const ApiRequest& q, const GenerateResult& r) {
  json paths = json::array();
  for (const Path& p : r.paths)
    paths.push_back({{"index", p.index},
                     {"score", std::isfinite(p.score) ? json(p.score) : json(nullptr)},
                     {"cumulative_logprob", p.cumulative_logprob},
                     {"tokens", p.tokens.size()},
                     {"finish_reason", finish_reason_name(p.finish)},
                     {"extracted_answer", p.extracted_answer}});
  json votes = json::array();
  for (const VoteEntry& v : r.votes) votes.push_back({{"answer", v.answer}, {"count", v.count}, {"weight", v.weight}});
  json out = {{"strategy", strategy_name(q.generate.strategy)}, {"tokens_generated", r.tokens_generated}, {"paths", paths}};
  if (std::holds_alternative<VoteOptions>(q.generate.strategy)) {
    out["votes"] = votes;
    out["winner"] = r.winner;
  }
  if (std::holds_alternative<MctsOptions>(q.generate.strategy))
    out["search"] = {{"simulations", r.search.simulations}, {"nodes", r.search.nodes}, {"rollouts", r.search.rollouts},
                     {"moves", r.search.moves}, {"best_value", r.search.best_value}};
  out["seed"] = q.seed;
  return out;
}

// The message's reasoning and content (null reasoning when the prompt did not open "<think>").
std::pair<json, std::string> split_message(const ApiRequest& q, const std::string& text) {
  if (!q.reasoning_open) return {json(nullptr), text};
  const ReasoningSplit s = split_reasoning(text);
  return {json(s.reasoning), s.answer};
}

}  // namespace

json usage_json(const ApiRequest& q, const GenerateResult& r, const ServedModel& m, int64_t cached_tokens) {
  const int64_t prompt = int64_t(q.generate.prompt.size());
  int64_t reasoning = 0;
  if (q.endpoint == Endpoint::Chat && q.reasoning_open)
    for (size_t i = 0; i < r.paths.size() && int(i) < q.n_choices; ++i) reasoning += reasoning_tokens(r.paths[i], m.model->tokenizer);
  return {{"prompt_tokens", prompt},
          {"completion_tokens", r.tokens_generated},
          {"total_tokens", prompt + r.tokens_generated},
          {"prompt_tokens_details", {{"cached_tokens", cached_tokens}}},
          {"completion_tokens_details", {{"reasoning_tokens", reasoning}}}};
}

json response_json(const ApiRequest& q, const GenerateResult& r, const ServedModel& m, const ResponseMeta& meta) {
  const Tokenizer& tok = m.model->tokenizer;
  json choices = json::array();
  for (size_t i = 0; i < r.paths.size() && int(i) < q.n_choices; ++i) {
    const Path& p = r.paths[i];
    json c = {{"index", i}, {"finish_reason", finish_reason(p.finish)}};
    if (q.endpoint == Endpoint::Chat) {
      auto [reasoning, content] = split_message(q, p.text);
      c["message"] = {{"role", "assistant"}, {"content", content}, {"reasoning_content", reasoning}, {"reasoning", reasoning}};
    } else {
      c["text"] = p.text;
    }
    c["logprobs"] = q.logprobs ? path_logprobs(q, p, tok) : json(nullptr);
    choices.push_back(c);
  }
  return {{"id", meta.id},
          {"object", q.endpoint == Endpoint::Chat ? "chat.completion" : "text_completion"},
          {"created", meta.created},
          {"model", m.id},
          {"system_fingerprint", "ponder"},
          {"choices", choices},
          {"usage", usage_json(q, r, m, meta.cached_tokens)},
          {"ponder", ponder_json(q, r)}};
}

// ---- streaming ----

namespace {

// Bytes at the end of s that start a UTF-8 character not yet complete.
size_t incomplete_utf8_tail(std::string_view s) {
  for (size_t back = 1; back <= std::min<size_t>(3, s.size()); ++back) {
    const unsigned char c = static_cast<unsigned char>(s[s.size() - back]);
    if ((c & 0xC0) == 0x80) continue;  // a continuation byte: look further back
    const size_t len = c >= 0xF0 ? 4 : c >= 0xE0 ? 3 : c >= 0xC0 ? 2 : 1;
    return len > back ? back : 0;
  }
  return 0;
}

// The longest suffix of s that is a proper prefix of word.
size_t partial_suffix(std::string_view s, std::string_view word) {
  for (size_t n = std::min(s.size(), word.size() - 1); n > 0; --n)
    if (word.starts_with(s.substr(s.size() - n))) return n;
  return 0;
}

}  // namespace

ChoiceStream::Delta ChoiceStream::push(const std::string& piece) {
  raw_ += piece;
  std::string_view text = raw_;
  size_t safe = text.size();
  for (const std::string& s : q_->generate.stop.stop) {
    const size_t at = text.find(s);
    if (at != std::string::npos) safe = std::min(safe, at);
    else safe = std::min(safe, text.size() - partial_suffix(text, s));
  }
  if (q_->endpoint == Endpoint::Chat && q_->reasoning_open && text.find("</think>") == std::string::npos)
    safe = std::min(safe, text.size() - partial_suffix(text, "</think>"));
  safe -= incomplete_utf8_tail(text.substr(0, safe));
  return emit(text.substr(0, safe));
}

ChoiceStream::Delta ChoiceStream::finish(const std::string& final_text) { return emit(final_text); }

// Sends what `text` (a prefix of the final text) adds to what was sent.
ChoiceStream::Delta ChoiceStream::emit(std::string_view text) {
  std::string_view reasoning, content = text;
  if (q_->endpoint == Endpoint::Chat && q_->reasoning_open) {
    const size_t end = text.find("</think>");
    reasoning = text.substr(0, end);
    const size_t lead = reasoning.find_first_not_of(" \t\r\n");
    if (lead != std::string_view::npos && reasoning.substr(lead).starts_with("<think>")) reasoning.remove_prefix(lead + 7);
    content = end == std::string_view::npos ? std::string_view() : text.substr(end + 8);
    const size_t first = content.find_first_not_of(" \t\r\n");  // the answer starts at its first character
    content = first == std::string_view::npos ? std::string_view() : content.substr(first);
  }
  Delta d;
  if (reasoning.size() > sent_reasoning_) d.reasoning = std::string(reasoning.substr(sent_reasoning_));
  if (content.size() > sent_content_) d.content = std::string(content.substr(sent_content_));
  sent_reasoning_ = std::max(sent_reasoning_, reasoning.size());
  sent_content_ = std::max(sent_content_, content.size());
  return d;
}

json path_logprobs_json(const ApiRequest& q, const Path& p, const Tokenizer& tok) { return path_logprobs(q, p, tok); }

json chunk_json(const ApiRequest& q, const ServedModel& m, const ResponseMeta& meta, int index, const ChoiceStream::Delta& d,
                bool first, const Path* finished, const json& logprobs) {
  json c = {{"index", index}, {"finish_reason", finished ? json(finish_reason(finished->finish)) : json(nullptr)}};
  if (q.endpoint == Endpoint::Chat) {
    json delta = json::object();
    if (first) delta["role"] = "assistant";
    if (!d.reasoning.empty()) {
      delta["reasoning_content"] = d.reasoning;
      delta["reasoning"] = d.reasoning;
    }
    if (!d.content.empty()) delta["content"] = d.content;
    c["delta"] = delta;
  } else {
    c["text"] = d.content;
  }
  c["logprobs"] = q.logprobs ? logprobs : json(nullptr);
  return {{"id", meta.id},
          {"object", q.endpoint == Endpoint::Chat ? "chat.completion.chunk" : "text_completion"},
          {"created", meta.created},
          {"model", m.id},
          {"system_fingerprint", "ponder"},
          {"choices", json::array({c})}};
}

json usage_chunk_json(const ApiRequest& q, const GenerateResult& r, const ServedModel& m, const ResponseMeta& meta) {
  return {{"id", meta.id},
          {"object", q.endpoint == Endpoint::Chat ? "chat.completion.chunk" : "text_completion"},
          {"created", meta.created},
          {"model", m.id},
          {"choices", json::array()},
          {"usage", usage_json(q, r, m, meta.cached_tokens)},
          {"ponder", ponder_json(q, r)}};
}

}  // namespace ponder::server

#pragma once
// The OpenAI-compatible request and response shapes of `ponder serve` (and DeepSeek's / vLLM's
// additions), as pure functions from JSON to a GenerateRequest and from a GenerateResult to JSON.
// No HTTP, no threads: the server (http_server.cpp) calls these, tests and the fuzz target too.
//
// Strategy of a request (the CLI's strategies, decode/options.h):
//   "ponder": {"strategy": "greedy|sample|beam|best-of|vote|verify|mcts", "samples", "beams",
//              "weighted", "answer_only", "length_penalty", "early_stopping",
//              mcts: "simulations", "expand", "c_puct", "rollout_temperature", "step_delim",
//              "budget_tokens"; the verifier of verify (required) and mcts (else answer agreement):
//              "answer" (the reference) or "numbers" and "target" (a countdown problem)}   explicit; else
//   "use_beam_search": true (vLLM)   beam search, width best_of or n (the larger), n returned; else
//   "best_of" > n (completions)      best-of: best_of samples, the n best by mean token log-prob; else
//   temperature 0, n 1, no penalty   greedy; else
//                                    n sampled paths sharing the prompt.
// Reasoning: when the rendered chat prompt opens "<think>" (R1-Distill and ponder's compact
// template do), the completion is "reasoning</think>answer": message.reasoning_content (DeepSeek's
// name, also "reasoning", vLLM's) and message.content are split as decode/reasoning.h says; a
// completion without "</think>" is all reasoning. Completions (/v1/completions) are not split.
#include <cstdint>
#include <optional>
#include <span>
#include <stdexcept>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "decode/options.h"
#include "decode/result.h"
#include "formats/chat_template.h"
#include "model/model.h"

namespace ponder::server {

// A request the API refuses: HTTP status and OpenAI's error object.
struct ApiError : std::runtime_error {
  ApiError(int status, std::string message, std::string param = "", std::string type = "invalid_request_error",
           std::string code = "")
      : std::runtime_error(std::move(message)), status(status), param(std::move(param)), type(std::move(type)),
        code(std::move(code)) {}
  int status;
  std::string param, type, code;
};
// {"error": {"message", "type", "param", "code"}} (param and code null when empty).
nlohmann::json error_json(const ApiError& e);

// What the API needs of the served model.
struct ServedModel {
  const Model* model = nullptr;
  std::string id;                         // the name /v1/models lists and responses carry
  int n_ctx = 0;                          // positions per request: prompt + new tokens
  std::optional<ChatFormat> chat_format;  // from the GGUF's template; none: chat requests are refused
};

enum class Endpoint { Chat, Completion };

struct ApiRequest {
  Endpoint endpoint = Endpoint::Chat;
  GenerateRequest generate;   // prompt ids, strategy, stop options, top_logprobs
  std::string prompt_text;    // the rendered prompt (empty when given as token ids)
  bool reasoning_open = false;  // the prompt opened "<think>": split the completion
  int n_choices = 1;          // choices returned
  bool stream = false, include_usage = false;
  bool logprobs = false;      // return the chosen tokens' log-probs
  uint64_t seed = 0;
};

// Parses a request body as JSON; anything that is not JSON (a syntax error, a number beyond a
// double's range, invalid UTF-8 in a string) -> ApiError 400 naming "body".
nlohmann::json parse_body(std::string_view body);

// Parses and validates a request body. Throws ApiError (400) naming the field, the expected and
// the actual value; unknown fields are ignored, as OpenAI's SDKs expect. `random_seed` is the seed
// when the request gives none.
ApiRequest parse_request(Endpoint endpoint, const nlohmann::json& body, const ServedModel& m, uint64_t random_seed);

// The usage and the identity of one response.
struct ResponseMeta {
  std::string id;
  int64_t created = 0;
  int64_t cached_tokens = 0;  // prompt tokens taken from the prefix cache
};

// The whole (non-streamed) response.
nlohmann::json response_json(const ApiRequest& q, const GenerateResult& r, const ServedModel& m, const ResponseMeta& meta);
nlohmann::json usage_json(const ApiRequest& q, const GenerateResult& r, const ServedModel& m, int64_t cached_tokens);

// Streaming (server-sent events): the text of one choice as its tokens arrive, cut into the
// deltas that can be sent now. Bytes that may still turn out to be the start of a stop string,
// of "</think>" or of a UTF-8 character are held back. With reasoning split, the reasoning deltas
// add up to the text before "</think>" and the content deltas to the text after it without its
// leading whitespace (the message's fields are these, trimmed).
class ChoiceStream {
 public:
  ChoiceStream(const ApiRequest& q, int index) : q_(&q), index_(index) {}
  struct Delta {
    std::string reasoning, content;
    bool empty() const { return reasoning.empty() && content.empty(); }
  };
  Delta push(const std::string& piece);    // a generated token's bytes (not an end-of-generation token)
  Delta finish(const std::string& final_text);  // the rest, from the path's final text
  int index() const { return index_; }
  bool started = false;  // the first chunk (with the role) has been sent

 private:
  Delta emit(std::string_view text);
  const ApiRequest* q_;
  int index_;
  std::string raw_;
  size_t sent_reasoning_ = 0, sent_content_ = 0;
};

// The log-probs of some generated tokens in the endpoint's shape: chat {"content": [{token,
// logprob, bytes, top_logprobs}]}, completions {tokens, token_logprobs, top_logprobs, text_offset}
// (offsets from text_offset on).
nlohmann::json logprobs_json(const ApiRequest& q, const Tokenizer& tok, std::span<const int32_t> tokens,
                             std::span<const float> logprobs, std::span<const std::vector<std::pair<int32_t, float>>> top,
                             size_t text_offset);
// The same for a whole path's shown tokens (an end-of-generation token is not shown).
nlohmann::json path_logprobs_json(const ApiRequest& q, const Path& p, const Tokenizer& tok);

// One chunk of a stream: a delta, finish_reason on a choice's last chunk, and (with logprobs) the
// log-probs of the tokens since the previous chunk.
nlohmann::json chunk_json(const ApiRequest& q, const ServedModel& m, const ResponseMeta& meta, int index,
                          const ChoiceStream::Delta& d, bool first, const Path* finished, const nlohmann::json& logprobs);
// The final chunk of a stream with stream_options.include_usage: no choices, the usage.
nlohmann::json usage_chunk_json(const ApiRequest& q, const GenerateResult& r, const ServedModel& m, const ResponseMeta& meta);

// Serializes for the wire: invalid UTF-8 (a token cut inside a character) becomes U+FFFD.
std::string dump(const nlohmann::json& j);

}  // namespace ponder::server

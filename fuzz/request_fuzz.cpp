// libFuzzer target for the HTTP API's request parser (server/openai_api.h): request bodies are
// untrusted bytes, so any input is either refused (ApiError with status 400 and a message: not
// JSON, or not a valid request) or becomes a request whose limits hold (a non-empty prompt of valid ids within the
// context, max_tokens within what is left of it, choices <= paths). Never another exception, a
// crash or undefined behaviour. The same bytes also drive the streaming text splitter
// (ChoiceStream): whatever the pieces, the deltas it sends add up to a prefix of what it sends in
// the end.
// The model is stories260K (../shared/models, or PONDER_FUZZ_MODEL), served with the R1 template.
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <string>

#include <nlohmann/json.hpp>

#include "core/error.h"
#include "model/model.h"
#include "server/openai_api.h"

namespace {

[[noreturn]] void broken(const std::string& what) {
  std::fprintf(stderr, "request_fuzz: %s\n", what.c_str());
  std::abort();
}

const ponder::server::ServedModel& served() {
  static std::unique_ptr<ponder::Model> model;
  static ponder::server::ServedModel m;
  if (!model) {
    const char* env = std::getenv("PONDER_FUZZ_MODEL");
    model = ponder::load_model(env ? env : "../shared/models/stories260K.gguf");
    m = {.model = model.get(), .id = "fuzz", .n_ctx = 128, .chat_format = ponder::ChatFormat::R1Distill};
  }
  return m;
}

void check_request(const ponder::server::ApiRequest& q, const ponder::server::ServedModel& m) {
  const auto& g = q.generate;
  if (g.prompt.empty()) broken("accepted an empty prompt");
  for (int32_t t : g.prompt)
    if (t < 0 || t >= m.model->config.n_vocab) broken("accepted a prompt token out of range");
  if (int64_t(g.prompt.size()) >= m.n_ctx) broken("accepted a prompt that fills the context");
  if (g.stop.max_tokens < 1 || int64_t(g.prompt.size()) + g.stop.max_tokens > m.n_ctx) broken("max_tokens outside the context");
  if (q.n_choices < 1 || q.n_choices > ponder::n_paths(g.strategy)) broken("more choices than paths");
}

void check_stream(const ponder::server::ApiRequest& q, const uint8_t* data, size_t size) {
  ponder::server::ChoiceStream cs(q, 0);
  std::string full, reasoning, content;
  for (size_t i = 0; i < size;) {
    const size_t n = 1 + data[i] % 7;  // pieces of 1..7 bytes
    const std::string piece(reinterpret_cast<const char*>(data + i), std::min(n, size - i));
    full += piece;
    const auto d = cs.push(piece);
    reasoning += d.reasoning;
    content += d.content;
    i += n;
  }
  ponder::server::ChoiceStream whole(q, 0);
  const auto all = whole.finish(full);
  if (all.reasoning.compare(0, reasoning.size(), reasoning) != 0 || all.content.compare(0, content.size(), content) != 0)
    broken("streamed deltas are not a prefix of the final text");
  const auto rest = cs.finish(full);
  if (reasoning + rest.reasoning != all.reasoning || content + rest.content != all.content)
    broken("streamed deltas and the final ones do not add up to the text");
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace ponder::server;
  const ServedModel& m = served();
  nlohmann::json body;
  try {
    body = parse_body(std::string_view(reinterpret_cast<const char*>(data), size));
  } catch (const ApiError& e) {
    if (e.status != 400) broken("a body that is not JSON is not a 400");
    return 0;
  }
  for (Endpoint ep : {Endpoint::Chat, Endpoint::Completion}) {
    try {
      const ApiRequest q = parse_request(ep, body, m, 1);
      check_request(q, m);
      check_stream(q, data, size);
    } catch (const ApiError& e) {
      if (e.status != 400 || std::string(e.what()).empty()) broken("an ApiError that is not a 400 with a message");
    } catch (const std::exception& e) {
      broken(std::string("unexpected exception: ") + e.what());
    }
  }
  return 0;
}

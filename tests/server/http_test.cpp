// `ponder serve` over real HTTP on loopback (an in-process server on a free port, httplib's client):
// every route and error status, reasoning split and streaming deltas against decoding alone,
// concurrency (batch invariance through the server, 64 streaming clients), client disconnects.
#include <httplib.h>
#include <gtest/gtest.h>

#include <arpa/inet.h>
#include <atomic>
#include <map>
#include <netinet/in.h>
#include <sys/socket.h>
#include <thread>
#include <unistd.h>

#include "decode/generate.h"
#include "decode/model_runner.h"
#include "decode/reasoning.h"
#include "server/http_server.h"
#include "support/shared_data.h"

namespace ponder::server {
namespace {

using nlohmann::json;
using ::ponder::testing::shared_path;

const Model& r1_model() {
  static std::unique_ptr<Model> m = load_model(shared_path("models/tiny-r1distill-random.gguf"));
  return *m;
}

// A server on a free loopback port; `ready` false leaves it loading.
struct TestServer {
  explicit TestServer(SchedulerOptions so = {.kv_blocks = 2048}, ServeOptions o = {}, bool ready = true)
      : model{.model = &r1_model(), .id = "tiny-r1", .n_ctx = 512, .chat_format = ChatFormat::R1Distill},
        scheduler(r1_model(), so) {
    o.port = 0;
    http = std::make_unique<HttpServer>(o);
    port = http->bind();
    thread = std::thread([this] { http->run(); });
    if (ready) http->set_ready(model, scheduler);
  }
  ~TestServer() {
    scheduler.shutdown(std::chrono::milliseconds(0));
    http->stop();
    thread.join();
  }
  httplib::Client client() const {
    httplib::Client c("127.0.0.1", port);
    c.set_read_timeout(60, 0);
    return c;
  }
  httplib::Result post(const std::string& path, const json& body, const httplib::Headers& h = {}) const {
    return client().Post(path, h, body.dump(), "application/json");
  }
  SchedulerMetrics metrics() const { return scheduler.metrics(); }

  ServedModel model;
  Scheduler scheduler;
  std::unique_ptr<HttpServer> http;
  int port = 0;
  std::thread thread;
};

json chat(const std::string& user, json extra = json::object()) {
  json body = {{"model", "tiny-r1"}, {"messages", {{{"role", "user"}, {"content", user}}}}, {"max_tokens", 16}};
  for (auto& [k, v] : extra.items()) body[k] = v;
  return body;
}

// The events of an SSE body ("data: ..." lines), [DONE] last.
std::vector<std::string> sse_events(const std::string& body) {
  std::vector<std::string> out;
  size_t at = 0;
  while ((at = body.find("data: ", at)) != std::string::npos) {
    const size_t end = body.find("\n\n", at);
    out.push_back(body.substr(at + 6, end - at - 6));
    at = end;
  }
  return out;
}

std::string trim(const std::string& s) {
  const size_t a = s.find_first_not_of(" \t\r\n"), b = s.find_last_not_of(" \t\r\n");
  return a == std::string::npos ? "" : s.substr(a, b - a + 1);
}

// What decoding alone gives for the chat prompt of `user`.
GenerateResult direct(const std::string& user, const Strategy& s, const StopOptions& stop, Verifier verifier = {}) {
  const Model& m = r1_model();
  GenerateRequest r{.prompt = m.tokenizer.encode(render_chat(ChatFormat::R1Distill, {{{"user", user}}}, true), true, true),
                    .strategy = s, .stop = stop, .verifier = std::move(verifier)};
  ModelRunner runner(m, kv_positions_for(int64_t(r.prompt.size()), s, stop.max_tokens));
  return generate(runner, r);
}

#define REQUIRE_R1() PONDER_REQUIRE_SHARED("models/tiny-r1distill-random.gguf")

TEST(Http, HealthIs503WhileLoadingThen200) {
  REQUIRE_R1();
  TestServer s({.kv_blocks = 64}, {}, /*ready=*/false);
  auto h = s.client().Get("/health");
  ASSERT_TRUE(h);
  EXPECT_EQ(h->status, 503);
  EXPECT_EQ(json::parse(h->body)["error"]["code"], "loading");
  EXPECT_EQ(s.post("/v1/chat/completions", chat("hi"))->status, 503);
  s.http->set_ready(s.model, s.scheduler);
  h = s.client().Get("/health");
  EXPECT_EQ(h->status, 200);
  EXPECT_EQ(json::parse(h->body)["status"], "ok");
}

TEST(Http, ChatSplitsReasoningAsDecodingAloneDoes) {
  REQUIRE_R1();
  TestServer s;
  // A thinking budget forces "</think>" after 3 tokens, so both parts are there.
  auto res = s.post("/v1/chat/completions", chat("What is 2+2?", {{"temperature", 0}, {"thinking_token_budget", 3}, {"logprobs", true}}));
  ASSERT_EQ(res->status, 200) << res->body;
  const json r = json::parse(res->body);
  const GenerateResult want = direct("What is 2+2?", GreedyOptions{}, {.max_tokens = 16, .think_budget = 3});
  const ReasoningSplit split = split_reasoning(want.paths[0].text);
  ASSERT_TRUE(split.has_end_tag);
  const json& msg = r["choices"][0]["message"];
  EXPECT_EQ(msg["role"], "assistant");
  EXPECT_EQ(msg["reasoning_content"], split.reasoning);
  EXPECT_EQ(msg["reasoning"], split.reasoning);
  EXPECT_EQ(msg["content"], split.answer);
  EXPECT_EQ(r["object"], "chat.completion");
  EXPECT_EQ(r["model"], "tiny-r1");
  EXPECT_EQ(r["choices"][0]["finish_reason"], want.paths[0].finish == FinishReason::Length ? "length" : "stop");
  // usage: every generated token; reasoning tokens up to and including "</think>".
  EXPECT_EQ(r["usage"]["completion_tokens"], want.tokens_generated);
  EXPECT_EQ(r["usage"]["prompt_tokens"].get<int64_t>() + want.tokens_generated, r["usage"]["total_tokens"].get<int64_t>());
  EXPECT_EQ(r["usage"]["completion_tokens_details"]["reasoning_tokens"], 5) << "3 tokens, the forced newline and </think>";
  // logprobs: the chosen tokens' log-probs, bitwise as decoding alone.
  const json& lp = r["choices"][0]["logprobs"]["content"];
  ASSERT_EQ(lp.size(), want.paths[0].logprobs.size());
  for (size_t i = 0; i < lp.size(); ++i) {
    EXPECT_EQ(lp[i]["logprob"].get<float>(), want.paths[0].logprobs[i]);
    EXPECT_EQ(lp[i]["token"], r1_model().tokenizer.token_to_piece(want.paths[0].tokens[i], true));
  }
}

// The ponder extension's tree search and verifier: the same paths as decoding alone, the budget
// kept, a verifier from "answer", and a clear error for verify without one.
TEST(Http, MctsAndVerifyAsDecodingAlone) {
  REQUIRE_R1();
  TestServer s;
  const json mcts = {{"ponder", {{"strategy", "mcts"}, {"budget_tokens", 60}, {"step_delim", " "}, {"expand", 3}, {"simulations", 4}}},
                     {"seed", 3}, {"temperature", 0.8}};
  auto res = s.post("/v1/chat/completions", chat("Tell me a story", mcts));
  ASSERT_EQ(res->status, 200) << res->body;
  const json r = json::parse(res->body);
  const GenerateResult want = direct("Tell me a story", MctsOptions{.simulations = 4, .expand = 3, .sampling = {.temperature = 0.8f},
                                                                    .step_delim = " ", .budget_tokens = 60, .seed = 3},
                                     {.max_tokens = 16});
  EXPECT_EQ(r["ponder"]["strategy"], "mcts");
  EXPECT_EQ(r["usage"]["completion_tokens"], want.tokens_generated);
  EXPECT_LE(r["usage"]["completion_tokens"].get<int64_t>(), 60);
  EXPECT_EQ(r["ponder"]["paths"][0]["tokens"], want.paths[0].tokens.size());
  EXPECT_EQ(r["ponder"]["paths"][0]["cumulative_logprob"].get<double>(), want.paths[0].cumulative_logprob);
  EXPECT_EQ(r["ponder"]["search"]["nodes"], want.search.nodes);

  res = s.post("/v1/chat/completions", chat("Tell me a story", {{"ponder", {{"strategy", "mcts"}, {"budget_tokens", 100000}}}}));
  EXPECT_EQ(res->status, 400);
  EXPECT_NE(res->body.find("lower ponder.budget_tokens"), std::string::npos) << res->body;

  const json no_verifier = {{"ponder", {{"strategy", "verify"}, {"samples", 4}}}, {"seed", 1}};
  res = s.post("/v1/chat/completions", chat("What is 2+2?", no_verifier));
  EXPECT_EQ(res->status, 400);
  EXPECT_NE(res->body.find("verifier"), std::string::npos) << res->body;

  const json verify = {{"ponder", {{"strategy", "verify"}, {"samples", 4}, {"answer", "4"}}}, {"seed", 1}, {"n", 2}};
  res = s.post("/v1/chat/completions", chat("What is 2+2?", verify));
  ASSERT_EQ(res->status, 200) << res->body;
  const json v = json::parse(res->body);
  EXPECT_EQ(v["choices"].size(), 2u);
  const Verifier four = [](const std::string& text) {
    Path p{.text = text};
    finish_path(p);
    return p.extracted_answer == "4" ? 1.0 : 0.0;
  };
  const GenerateResult vw = direct("What is 2+2?", VerifyOptions{.n_samples = 4, .sampling = {.temperature = 1.0f}, .seed = 1},
                                   {.max_tokens = 16}, four);
  ASSERT_EQ(v["ponder"]["paths"].size(), 4u);
  for (size_t i = 0; i < 4; ++i) {
    EXPECT_EQ(v["ponder"]["paths"][i]["index"], vw.paths[i].index);
    EXPECT_EQ(v["ponder"]["paths"][i]["score"].get<double>(), vw.paths[i].score);
  }
}

TEST(Http, StreamedDeltasAddUpToTheMessage) {
  REQUIRE_R1();
  TestServer s;
  for (const json& extra : {json{{"temperature", 0}, {"thinking_token_budget", 4}, {"logprobs", true}, {"top_logprobs", 2}},
                            json{{"n", 3}, {"seed", 9}, {"thinking_token_budget", 2}, {"max_tokens", 12}, {"logprobs", true}},
                            json{{"ponder", {{"strategy", "vote"}, {"samples", 4}}}, {"n", 2}, {"seed", 4}},
                            json{{"use_beam_search", true}, {"n", 2}, {"max_tokens", 8}}}) {
    const json whole = json::parse(s.post("/v1/chat/completions", chat("Tell me a story", extra))->body);
    json streamed_body = chat("Tell me a story", extra);
    streamed_body["stream"] = true;
    streamed_body["stream_options"] = {{"include_usage", true}};
    auto res = s.post("/v1/chat/completions", streamed_body);
    ASSERT_EQ(res->status, 200) << res->body;
    EXPECT_EQ(res->get_header_value("Content-Type"), "text/event-stream");
    const auto events = sse_events(res->body);
    ASSERT_GE(events.size(), 3u);
    EXPECT_EQ(events.back(), "[DONE]");
    const size_t n = whole["choices"].size();
    std::vector<std::string> reasoning(n), content(n), finish(n);
    std::vector<int> roles(n, 0);
    std::vector<json> logprobs(n, json::array());  // each chunk carries its own tokens' log-probs
    for (size_t e = 0; e + 2 < events.size(); ++e) {
      const json c = json::parse(events[e]);
      EXPECT_EQ(c["object"], "chat.completion.chunk");
      ASSERT_EQ(c["choices"].size(), 1u);
      const json& ch = c["choices"][0];
      const size_t i = ch["index"];
      ASSERT_LT(i, n);
      roles[i] += ch["delta"].contains("role");
      reasoning[i] += ch["delta"].value("reasoning_content", "");
      content[i] += ch["delta"].value("content", "");
      if (!ch["finish_reason"].is_null()) finish[i] = ch["finish_reason"];
      if (ch["logprobs"].is_object())
        for (const json& t : ch["logprobs"]["content"]) logprobs[i].push_back(t);
    }
    const json usage = json::parse(events[events.size() - 2]);
    EXPECT_TRUE(usage["choices"].empty());
    EXPECT_EQ(usage["usage"], whole["usage"]) << extra.dump();
    // Streamed choices are in path order; the whole response's are ranked: match them by path index.
    for (size_t i = 0; i < n; ++i) {
      const json& paths = whole["ponder"]["paths"];
      size_t k = i;
      if (extra.contains("n") && !extra.contains("ponder") && !extra.contains("use_beam_search"))
        for (size_t j = 0; j < n; ++j)
          if (paths[j]["index"] == int(i)) k = j;
      const json& msg = whole["choices"][k]["message"];
      EXPECT_EQ(roles[i], 1) << "one chunk per choice carries the role";
      EXPECT_EQ(trim(reasoning[i]), msg["reasoning_content"]) << extra.dump() << " choice " << i;
      EXPECT_EQ(content[i], msg["content"]) << extra.dump() << " choice " << i;
      EXPECT_EQ(finish[i], whole["choices"][k]["finish_reason"]);
      if (extra.contains("logprobs")) {
        EXPECT_EQ(logprobs[i], whole["choices"][k]["logprobs"]["content"]) << extra.dump() << " choice " << i;
        EXPECT_GT(logprobs[i].size(), 0u);
      }
    }
  }
}

TEST(Http, CompletionsBestOfBeamAndLogprobs) {
  REQUIRE_R1();
  TestServer s;
  const json base = {{"prompt", "Hello there"}, {"max_tokens", 6}, {"seed", 5}};
  json b = base;
  b["best_of"] = 4;
  b["n"] = 2;
  b["logprobs"] = 2;
  const json r = json::parse(s.post("/v1/completions", b)->body);
  EXPECT_EQ(r["object"], "text_completion");
  ASSERT_EQ(r["choices"].size(), 2u);
  EXPECT_EQ(r["ponder"]["strategy"], "best-of");
  EXPECT_EQ(r["usage"]["completion_tokens"], 4 * 6) << "every sampled path counts";
  EXPECT_GE(r["ponder"]["paths"][0]["score"].get<double>(), r["ponder"]["paths"][1]["score"].get<double>());
  const json& lp = r["choices"][0]["logprobs"];
  ASSERT_EQ(lp["tokens"].size(), 6u);
  EXPECT_EQ(lp["top_logprobs"][0].size(), 2u);
  std::string joined;
  for (const json& t : lp["tokens"]) joined += t.get<std::string>();
  EXPECT_EQ(joined, r["choices"][0]["text"]);
  json beam = base;
  beam["use_beam_search"] = true;
  beam["n"] = 2;
  beam["best_of"] = 3;
  const json rb = json::parse(s.post("/v1/completions", beam)->body);
  EXPECT_EQ(rb["ponder"]["strategy"], "beam");
  const Model& m = r1_model();
  const GenerateRequest req{.prompt = m.tokenizer.encode("Hello there", true, true),
                            .strategy = BeamOptions{.num_beams = 3, .num_return = 2}, .stop = {.max_tokens = 6}};
  ModelRunner runner(m, 512);
  const GenerateResult want = generate(runner, req);
  for (size_t i = 0; i < 2; ++i) EXPECT_EQ(rb["choices"][i]["text"], want.paths[i].text);
}

TEST(Http, ErrorsNameTheFieldWithTheRightStatus) {
  REQUIRE_R1();
  TestServer s;
  struct Case {
    json body;
    std::string param;
  };
  const std::vector<Case> cases = {
      {{{"messages", "hi"}}, "messages"},
      {{{"messages", json::array()}}, "messages"},
      {json::object(), "messages"},
      {chat("hi", {{"temperature", 3}}), "temperature"},
      {chat("hi", {{"top_p", 0}}), "top_p"},
      {chat("hi", {{"n", 0}}), "n"},
      {chat("hi", {{"max_tokens", -1}}), "max_tokens"},
      {chat("hi", {{"max_tokens", 1.5}}), "max_tokens"},
      {chat("hi", {{"stop", 3}}), "stop"},
      {chat("hi", {{"logit_bias", {{"abc", 1}}}}), "logit_bias"},
      {chat("hi", {{"logit_bias", {{"5", 1000}}}}), "logit_bias[\"5\"]"},
      {chat("hi", {{"top_logprobs", 3}}), "top_logprobs"},
      {chat("hi", {{"stream_options", {{"include_usage", true}}}}), "stream_options"},
      {chat("hi", {{"ponder", {{"strategy", "tree"}}}}), "ponder.strategy"},
      {chat("hi", {{"presence_penalty", "x"}}), "presence_penalty"},
      {{{"messages", {{{"role", "user"}, {"content", {{{"type", "image_url"}}}}}}}}, "messages[0].content[0].type"},
  };
  for (const Case& c : cases) {
    auto res = s.post("/v1/chat/completions", c.body);
    ASSERT_TRUE(res);
    EXPECT_EQ(res->status, 400) << c.body.dump();
    const json e = json::parse(res->body)["error"];
    EXPECT_EQ(e["param"], c.param) << e.dump();
    EXPECT_EQ(e["type"], "invalid_request_error");
    EXPECT_FALSE(e["message"].get<std::string>().empty());
  }
  for (const char* body : {"{not json", R"({"messages": 1e99999})", "[1, 2", "\xff"}) {
    auto bad_json = s.client().Post("/v1/chat/completions", body, "application/json");
    EXPECT_EQ(bad_json->status, 400) << body;  // (1e99999 overflows a double: found by the fuzz target)
    EXPECT_EQ(json::parse(bad_json->body)["error"]["param"], "body");
  }
  auto ctx = s.post("/v1/completions", {{"prompt", std::vector<int>(600, 100)}});
  EXPECT_EQ(ctx->status, 400);
  EXPECT_EQ(json::parse(ctx->body)["error"]["code"], "context_length_exceeded");
  auto none = s.client().Get("/v1/nothing");
  EXPECT_EQ(none->status, 404);
  EXPECT_EQ(json::parse(none->body)["error"]["code"], "not_found");
}

TEST(Http, ApiKeyBodyLimitAndQueueLimit) {
  REQUIRE_R1();
  // Room for one request of 400 tokens at a time and none waiting.
  TestServer s({.kv_blocks = 40, .max_queue = 0}, {.api_key = "sekrit", .max_body_bytes = 4096});
  const httplib::Headers key = {{"Authorization", "Bearer sekrit"}};
  auto no_key = s.post("/v1/chat/completions", chat("hi"));
  EXPECT_EQ(no_key->status, 401);
  EXPECT_EQ(json::parse(no_key->body)["error"]["code"], "invalid_api_key");
  EXPECT_EQ(s.post("/v1/chat/completions", chat("hi"), {{"Authorization", "Bearer wrong"}})->status, 401);
  EXPECT_EQ(s.client().Get("/health")->status, 200) << "/health needs no key";
  EXPECT_EQ(s.client().Get("/v1/models", key)->status, 200);
  auto big = s.post("/v1/chat/completions", chat(std::string(5000, 'a')), key);
  EXPECT_EQ(big->status, 413);
  EXPECT_EQ(json::parse(big->body)["error"]["code"], "body_too_large");
  // A long stream holds the KV blocks; a second request finds no room and no queue: 429.
  std::atomic<bool> streaming{false};
  std::thread long_one([&] {
    json b = chat("hi", {{"max_tokens", 400}, {"stream", true}, {"seed", 1}});
    httplib::Client c = s.client();
    httplib::Request req;
    c.Post("/v1/chat/completions", key, b.dump(), "application/json");
    streaming = true;
  });
  while (s.metrics().running == 0) std::this_thread::sleep_for(std::chrono::milliseconds(5));
  auto busy = s.post("/v1/chat/completions", chat("hi", {{"max_tokens", 400}}), key);
  EXPECT_EQ(busy->status, 429);
  EXPECT_EQ(busy->get_header_value("Retry-After"), "1");
  EXPECT_EQ(json::parse(busy->body)["error"]["type"], "rate_limit_error");
  long_one.join();
}

TEST(Http, TokenizeDetokenizeModelsAndMetrics) {
  REQUIRE_R1();
  TestServer s;
  const auto t = json::parse(s.post("/tokenize", {{"content", "Hello world"}, {"with_pieces", true}})->body);
  const auto ids = r1_model().tokenizer.encode("Hello world", false, true);
  ASSERT_EQ(t["tokens"].size(), ids.size());
  json plain = json::array();
  for (size_t i = 0; i < ids.size(); ++i) {
    EXPECT_EQ(t["tokens"][i]["id"], ids[i]);
    plain.push_back(ids[i]);
  }
  EXPECT_EQ(json::parse(s.post("/detokenize", {{"tokens", plain}})->body)["content"], "Hello world");
  EXPECT_EQ(s.post("/detokenize", {{"tokens", {-1}}})->status, 400);
  const auto models = json::parse(s.client().Get("/v1/models")->body);
  EXPECT_EQ(models["data"][0]["id"], "tiny-r1");
  s.post("/v1/chat/completions", chat("hi", {{"temperature", 0}}));
  const std::string metrics = s.client().Get("/metrics")->body;
  for (const char* name : {"ponder_requests_total 1", "ponder_requests_running 0", "ponder_kv_blocks_total 2048",
                           "ponder_generated_tokens_total 16", "# TYPE ponder_step_seconds_total counter"})
    EXPECT_NE(metrics.find(name), std::string::npos) << name << " in\n" << metrics;
  EXPECT_EQ(s.client().Get("/")->get_header_value("Content-Type"), "text/html; charset=utf-8");
}

// The issue's batch-invariance check through the server: 16 concurrent greedy requests give
// exactly what each gives alone.
TEST(Http, SixteenConcurrentGreedyRequestsGiveTheSequentialOutputs) {
  REQUIRE_R1();
  TestServer s({.kv_blocks = 2048, .prefill_chunk = 16});
  std::vector<std::string> users;
  for (int i = 0; i < 16; ++i) users.push_back("Question number " + std::to_string(i) + std::string(size_t(i), '?'));
  std::vector<json> got(16);
  std::vector<std::thread> clients;
  for (int i = 0; i < 16; ++i)
    clients.emplace_back([&, i] {
      got[size_t(i)] = json::parse(s.post("/v1/chat/completions", chat(users[size_t(i)], {{"temperature", 0}, {"logprobs", true}}))->body);
    });
  for (auto& c : clients) c.join();
  for (int i = 0; i < 16; ++i) {
    const GenerateResult want = direct(users[size_t(i)], GreedyOptions{}, {.max_tokens = 16});
    const json& lp = got[size_t(i)]["choices"][0]["logprobs"]["content"];
    ASSERT_EQ(lp.size(), want.paths[0].logprobs.size()) << i;
    for (size_t k = 0; k < lp.size(); ++k) EXPECT_EQ(lp[k]["logprob"].get<float>(), want.paths[0].logprobs[k]) << i;
    // (as it goes over the wire: bytes that are not UTF-8 become U+FFFD)
    EXPECT_EQ(got[size_t(i)]["choices"][0]["message"]["reasoning_content"],
              json::parse(dump(json(split_reasoning(want.paths[0].text).reasoning))));
  }
}

// 64 streaming clients at once: each gets its whole stream exactly once, and the KV blocks
// return to where they were.
TEST(Http, SixtyFourConcurrentStreamsAllCompleteAndFreeTheirBlocks) {
  REQUIRE_R1();
  TestServer s({.kv_blocks = 4096, .max_queue = 64});
  constexpr int kClients = 64;
  std::vector<std::string> streamed(kClients), whole(kClients);
  std::vector<int> status(kClients, 0);
  const auto t_start = std::chrono::steady_clock::now();
  std::vector<std::thread> clients;
  for (int i = 0; i < kClients; ++i)
    clients.emplace_back([&, i] {
      const json b = chat("Client " + std::to_string(i), {{"seed", i}, {"max_tokens", 12}, {"stream", true}});
      auto res = s.post("/v1/chat/completions", b);
      if (!res) {
        ADD_FAILURE() << "client " << i << ": " << httplib::to_string(res.error()) << " after "
                      << std::chrono::duration<double>(std::chrono::steady_clock::now() - t_start).count() << " s";
        return;
      }
      status[size_t(i)] = res->status;
      for (const std::string& e : sse_events(res->body)) {
        if (e == "[DONE]") {
          streamed[size_t(i)] += "[DONE]";
          continue;
        }
        const json c = json::parse(e);
        for (const json& ch : c["choices"])
          streamed[size_t(i)] += ch["delta"].value("reasoning_content", "") + "|" + ch["delta"].value("content", "");
      }
    });
  for (auto& c : clients) c.join();
  for (int i = 0; i < kClients; ++i) {
    ASSERT_EQ(status[size_t(i)], 200) << "client " << i;
    EXPECT_TRUE(streamed[size_t(i)].ends_with("[DONE]"));
    EXPECT_EQ(streamed[size_t(i)].find("[DONE]"), streamed[size_t(i)].size() - 6) << "one [DONE]";
  }
  // The same requests one at a time give the same text (seeded): nothing lost, duplicated or mixed.
  for (int i = 0; i < kClients; i += 9) {
    const json w = json::parse(s.post("/v1/chat/completions", chat("Client " + std::to_string(i), {{"seed", i}, {"max_tokens", 12}}))->body);
    std::string r;
    for (char c : streamed[size_t(i)])
      if (c != '|') r += c;
    r.resize(r.size() - 6);
    EXPECT_EQ(trim(r), w["choices"][0]["message"]["reasoning_content"].get<std::string>() + w["choices"][0]["message"]["content"].get<std::string>())
        << "client " << i;
  }
  const SchedulerMetrics m = s.metrics();
  EXPECT_EQ(m.requests_finished, kClients + (kClients + 8) / 9);
  EXPECT_EQ(m.running, 0);
  EXPECT_EQ(m.kv_blocks_used - m.kv_blocks_cached_idle, 0);
}

TEST(Http, AClientThatHangsUpMidStreamIsCancelledAndItsBlocksFreed) {
  REQUIRE_R1();
  TestServer s;
  httplib::Client c = s.client();
  int chunks = 0;
  const json b = chat("Go on", {{"max_tokens", 500}, {"stream", true}, {"n", 4}, {"seed", 2}});
  httplib::Request req;
  req.method = "POST";
  req.path = "/v1/chat/completions";
  req.body = b.dump();
  req.set_header("Content-Type", "application/json");
  req.content_receiver = [&](const char*, size_t, uint64_t, uint64_t) { return ++chunks < 3; };  // then hang up
  c.send(req);
  EXPECT_GE(chunks, 3);
  for (int i = 0; i < 200 && s.metrics().running > 0; ++i) std::this_thread::sleep_for(std::chrono::milliseconds(20));
  const SchedulerMetrics m = s.metrics();
  EXPECT_EQ(m.running, 0) << "cancelled within seconds";
  EXPECT_EQ(m.requests_cancelled, 1);
  EXPECT_EQ(m.kv_blocks_used - m.kv_blocks_cached_idle, 0);
}

}  // namespace
}  // namespace ponder::server

namespace ponder::server {
namespace {

// A non-streamed request runs for longer than a second: the server writes a byte of JSON
// whitespace once a second, so a client that gave up is noticed and its request cancelled.
TEST(Http, AClientThatGivesUpOnAWholeResponseIsCancelled) {
  REQUIRE_R1();
  TestServer s({.kv_blocks = 2048});
  // A raw connection: send the request, wait 1.5 s, hang up.
  const std::string body = chat("Go on", {{"max_tokens", 200}, {"n", 8}, {"seed", 3}}).dump();
  const std::string request = "POST /v1/chat/completions HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
                              "Content-Length: " + std::to_string(body.size()) + "\r\n\r\n" + body;
  const int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(uint16_t(s.port));
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ASSERT_EQ(connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr), 0);
  ASSERT_EQ(send(fd, request.data(), request.size(), 0), ssize_t(request.size()));
  std::this_thread::sleep_for(std::chrono::milliseconds(1500));
  ASSERT_EQ(s.metrics().running, 1) << "the request ended before the client gave up; make it longer";
  close(fd);
  for (int i = 0; i < 300 && s.metrics().running > 0; ++i) std::this_thread::sleep_for(std::chrono::milliseconds(20));
  const SchedulerMetrics m = s.metrics();
  EXPECT_EQ(m.running, 0) << "cancelled within seconds";
  EXPECT_EQ(m.requests_cancelled, 1);
  EXPECT_EQ(m.kv_blocks_used - m.kv_blocks_cached_idle, 0);
}

// A whole response that takes longer than a second arrives as chunks of leading whitespace and
// then the JSON, which parses as usual.
TEST(Http, ALongWholeResponseIsValidJsonAfterItsHeartbeats) {
  REQUIRE_R1();
  TestServer s({.kv_blocks = 2048});
  const auto t0 = std::chrono::steady_clock::now();
  auto r = s.post("/v1/chat/completions", chat("Go on", {{"max_tokens", 200}, {"n", 8}, {"seed", 3}}));
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 200);
  const json j = json::parse(r->body);
  EXPECT_EQ(j["choices"].size(), 8u);
  EXPECT_EQ(j["usage"]["completion_tokens"], 8 * 200);
  if (seconds > 1.5) {
    EXPECT_EQ(r->body[0], ' ') << "heartbeats before the JSON";
  }
}

}  // namespace
}  // namespace ponder::server

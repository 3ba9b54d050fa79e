#include "server/http_server.h"

#include <httplib.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <random>
#include <sys/socket.h>

#include "core/error.h"
#include "server/web_page.h"

namespace ponder::server {

using nlohmann::json;

namespace {

void send_json(httplib::Response& res, int status, const json& body) {
  res.status = status;
  res.set_content(dump(body), "application/json");
}

void send_error(httplib::Response& res, const ApiError& e) {
  if (e.status == 429) res.set_header("Retry-After", "1");
  send_json(res, e.status, error_json(e));
}

json parse_body(const httplib::Request& req) { return server::parse_body(req.body); }

// The reply to a request whose worker failed (cancelled, or an error inside the strategy).
ApiError job_error(std::exception_ptr error) {
  try {
    std::rethrow_exception(error);
  } catch (const Cancelled& e) {
    return ApiError(503, e.what(), "", "unavailable_error", "cancelled");
  } catch (const InvalidArgument& e) {
    return ApiError(400, e.what());
  } catch (const std::exception& e) {
    return ApiError(500, std::string("internal error: ") + e.what(), "", "server_error");
  }
}

bool is_streamable(const Strategy& s) {
  return std::holds_alternative<GreedyOptions>(s) || std::holds_alternative<SampleOptions>(s);
}

bool write(httplib::DataSink& sink, const std::string& s) { return sink.write(s.data(), s.size()); }

std::string sse(const json& j) { return "data: " + dump(j) + "\n\n"; }

constexpr auto kHeartbeat = std::chrono::milliseconds(1000);

}  // namespace

struct HttpServer::Impl {
  ServeOptions options;
  httplib::Server svr;
  std::atomic<const ServedModel*> model{nullptr};
  std::atomic<Scheduler*> scheduler{nullptr};
  std::atomic<int64_t> next_id{0};
  std::atomic<int64_t> rejected{0};
  int listen_fd = -1;
  std::random_device random;
  std::mutex random_mu;

  uint64_t random_seed() {
    std::lock_guard lk(random_mu);
    return (uint64_t(random()) << 32) ^ random();
  }

  // The model and scheduler, or a 503 while loading.
  std::pair<const ServedModel*, Scheduler*> ready() const {
    const ServedModel* m = model.load();
    Scheduler* s = scheduler.load();
    if (!m || !s) throw ApiError(503, "the model is still loading; retry in a moment", "", "unavailable_error", "loading");
    return {m, s};
  }

  void routes();
  void completion(const httplib::Request& req, httplib::Response& res, Endpoint ep);
  void stream_response(httplib::Response& res, std::shared_ptr<ApiRequest> q, std::shared_ptr<Job> job, ResponseMeta meta,
                       const ServedModel& m);
  void delayed_response(httplib::Response& res, std::shared_ptr<ApiRequest> q, std::shared_ptr<Job> job, ResponseMeta meta,
                        const ServedModel& m);
  std::string metrics_text() const;
};

// Wraps a handler: ApiError and the library's errors become OpenAI-style error replies.
template <typename F>
auto guarded(F f) {
  return [f](const httplib::Request& req, httplib::Response& res) {
    try {
      f(req, res);
    } catch (const ApiError& e) {
      send_error(res, e);
    } catch (const QueueFull& e) {
      send_error(res, ApiError(429, e.what(), "", "rate_limit_error", "queue_full"));
    } catch (const Cancelled& e) {
      send_error(res, ApiError(503, e.what(), "", "unavailable_error", "shutting_down"));
    } catch (const InvalidArgument& e) {
      send_error(res, ApiError(400, e.what()));
    } catch (const std::exception& e) {
      send_error(res, ApiError(500, std::string("internal error: ") + e.what(), "", "server_error"));
    }
  };
}

void HttpServer::Impl::routes() {
  svr.set_payload_max_length(options.max_body_bytes);
  const int threads = std::max(8, options.http_threads);
  svr.new_task_queue = [threads] { return new httplib::ThreadPool(size_t(threads)); };
  svr.set_keep_alive_timeout(5);
  // Streamed tokens are small writes: without TCP_NODELAY, Nagle's algorithm holds each one until
  // the client acknowledges the previous one, which a delayed ACK can put off by 40 ms.
  svr.set_tcp_nodelay(true);
  svr.set_socket_options([this](socket_t sock) {
    int yes = 1;
    setsockopt(sock, SOL_SOCKET, SO_REUSEADDR, &yes, sizeof yes);
    listen_fd = sock;
  });

  svr.set_pre_routing_handler([this](const httplib::Request& req, httplib::Response& res) {
    if (options.api_key.empty() || req.path == "/health" || req.path == "/") return httplib::Server::HandlerResponse::Unhandled;
    if (req.get_header_value("Authorization") == "Bearer " + options.api_key) return httplib::Server::HandlerResponse::Unhandled;
    send_error(res, ApiError(401, req.has_header("Authorization")
                                      ? "incorrect API key in the Authorization header"
                                      : "no API key: send the header \"Authorization: Bearer KEY\"",
                             "", "invalid_request_error", "invalid_api_key"));
    return httplib::Server::HandlerResponse::Handled;
  });
  // Statuses the library sets itself (404 no route, 413 body too large, 400 bad request line).
  svr.set_error_handler([](const httplib::Request& req, httplib::Response& res) {
    if (!res.body.empty()) return;
    if (res.status == 404)
      send_error(res, ApiError(404, "no route " + req.method + " " + req.path, "", "invalid_request_error", "not_found"));
    else if (res.status == 413)
      send_error(res, ApiError(413, "the request body is larger than this server accepts", "body", "invalid_request_error",
                               "body_too_large"));
    else
      send_error(res, ApiError(res.status, "HTTP error " + std::to_string(res.status)));
  });

  svr.Get("/health", guarded([this](const httplib::Request&, httplib::Response& res) {
            ready();
            send_json(res, 200, {{"status", "ok"}});
          }));
  svr.Get("/", [](const httplib::Request&, httplib::Response& res) { res.set_content(web_page(), "text/html; charset=utf-8"); });
  svr.Get("/v1/models", guarded([this](const httplib::Request&, httplib::Response& res) {
            const auto [m, s] = ready();
            send_json(res, 200,
                      {{"object", "list"},
                       {"data", json::array({{{"id", m->id},
                                              {"object", "model"},
                                              {"created", 0},
                                              {"owned_by", "ponder"},
                                              {"meta",
                                               {{"n_ctx", m->n_ctx},
                                                {"n_vocab", m->model->config.n_vocab},
                                                {"kv_blocks", s->kv_blocks()},
                                                {"chat_format", m->chat_format ? chat_format_name(*m->chat_format) : ""}}}}})}});
          }));
  svr.Get("/metrics", guarded([this](const httplib::Request&, httplib::Response& res) {
            res.set_content(metrics_text(), "text/plain; version=0.0.4");
          }));
  svr.Post("/tokenize", guarded([this](const httplib::Request& req, httplib::Response& res) {
             const auto [m, s] = ready();
             const json body = parse_body(req);
             if (!body.is_object() || !body.contains("content") || !body["content"].is_string())
               throw ApiError(400, "'content' is required: the text to tokenize", "content");
             const bool add_special = body.value("add_special", false), with_pieces = body.value("with_pieces", false);
             const std::vector<int32_t> ids = m->model->tokenizer.encode(body["content"].get<std::string>(), add_special, true);
             json tokens = json::array();
             for (int32_t id : ids)
               tokens.push_back(with_pieces ? json{{"id", id}, {"piece", m->model->tokenizer.token_to_piece(id, true)}} : json(id));
             send_json(res, 200, {{"tokens", tokens}});
           }));
  svr.Post("/detokenize", guarded([this](const httplib::Request& req, httplib::Response& res) {
             const auto [m, s] = ready();
             const json body = parse_body(req);
             if (!body.is_object() || !body.contains("tokens") || !body["tokens"].is_array())
               throw ApiError(400, "'tokens' is required: an array of token ids", "tokens");
             std::string text;
             for (const json& t : body["tokens"]) {
               if (!t.is_number_integer() || t.get<int64_t>() < 0 || t.get<int64_t>() >= m->model->config.n_vocab)
                 throw ApiError(400, "'tokens' must hold token ids in [0, " + std::to_string(m->model->config.n_vocab) +
                                         "), got " + dump(t), "tokens");
               text += m->model->tokenizer.token_to_piece(int32_t(t.get<int64_t>()), true);
             }
             send_json(res, 200, {{"content", text}});
           }));
  for (const char* path : {"/v1/chat/completions", "/chat/completions"})
    svr.Post(path, guarded([this](const httplib::Request& req, httplib::Response& res) { completion(req, res, Endpoint::Chat); }));
  for (const char* path : {"/v1/completions", "/completions"})
    svr.Post(path, guarded([this](const httplib::Request& req, httplib::Response& res) { completion(req, res, Endpoint::Completion); }));
}

void HttpServer::Impl::completion(const httplib::Request& req, httplib::Response& res, Endpoint ep) {
  const auto [m, s] = ready();
  auto q = std::make_shared<ApiRequest>(parse_request(ep, parse_body(req), *m, random_seed()));
  std::shared_ptr<Job> job;
  try {
    job = s->submit(q->generate, q->stream);
  } catch (const QueueFull&) {
    ++rejected;
    throw;
  }
  ResponseMeta meta{.id = (ep == Endpoint::Chat ? "chatcmpl-" : "cmpl-") + std::to_string(++next_id),
                    .created = std::chrono::duration_cast<std::chrono::seconds>(std::chrono::system_clock::now().time_since_epoch()).count()};
  if (q->stream) stream_response(res, q, job, meta, *m);
  else delayed_response(res, q, job, meta, *m);
}

// A non-streamed response. A request that ends within a second gets a plain reply with its
// status; a longer one gets a chunked 200 reply whose body starts with whitespace written once a
// second while it runs (valid JSON), so that a client that went away is noticed and its request
// cancelled, freeing its KV blocks.
void HttpServer::Impl::delayed_response(httplib::Response& res, std::shared_ptr<ApiRequest> q, std::shared_ptr<Job> job,
                                        ResponseMeta meta, const ServedModel& m) {
  auto reply = [q, job, &m](ResponseMeta meta) -> std::pair<int, json> {
    if (job->error()) {
      const ApiError e = job_error(job->error());
      return {e.status, error_json(e)};
    }
    meta.cached_tokens = job->cached_tokens();
    return {200, response_json(*q, job->result(), m, meta)};
  };
  std::vector<Job::TokenEvent> ignored;
  const auto t0 = std::chrono::steady_clock::now();
  while (std::chrono::steady_clock::now() - t0 < kHeartbeat) {
    if (job->wait(ignored, std::chrono::milliseconds(50))) {
      const auto [status, body] = reply(meta);
      send_json(res, status, body);
      return;
    }
    ignored.clear();
  }
  res.set_chunked_content_provider("application/json", [job, reply, meta](size_t, httplib::DataSink& sink) {
    std::vector<Job::TokenEvent> ignored;
    for (;;) {
      const bool done = job->wait(ignored, kHeartbeat);
      ignored.clear();
      if (done) break;
      if (!write(sink, " ")) {  // the client is gone
        job->cancel();
        return false;
      }
    }
    write(sink, dump(reply(meta).second));
    sink.done();
    return true;
  });
}

// Server-sent events: greedy and sampled paths stream their text as tokens arrive, one choice per
// path; beam search, best-of and vote send each returned choice whole when the request ends (the
// choices are not known before). Then a usage chunk when asked for, then "data: [DONE]".
void HttpServer::Impl::stream_response(httplib::Response& res, std::shared_ptr<ApiRequest> q, std::shared_ptr<Job> job,
                                       ResponseMeta meta, const ServedModel& m) {
  res.set_header("Cache-Control", "no-cache");
  res.set_chunked_content_provider("text/event-stream", [q, job, meta, &m](size_t, httplib::DataSink& sink) mutable {
    const Tokenizer& tok = m.model->tokenizer;
    std::vector<ChoiceStream> streams;
    for (int i = 0; i < q->n_choices; ++i) streams.emplace_back(*q, i);
    const bool live = is_streamable(q->generate.strategy);
    // Per choice, the tokens chosen since its last chunk: their log-probs go with the next chunk.
    struct Unsent {
      std::vector<int32_t> ids;
      std::vector<float> logprobs;
      std::vector<std::vector<std::pair<int32_t, float>>> top;
      size_t text_offset = 0;  // bytes of the tokens sent before (completions' text_offset)
    };
    std::vector<Unsent> unsent(streams.size());
    auto take_logprobs = [&](size_t i) -> json {
      if (!q->logprobs) return nullptr;
      Unsent& u = unsent[i];
      json j = logprobs_json(*q, tok, u.ids, u.logprobs, u.top, u.text_offset);
      for (int32_t id : u.ids) u.text_offset += tok.token_to_piece(id, true).size();
      u.ids.clear();
      u.logprobs.clear();
      u.top.clear();
      return j;
    };
    std::vector<Job::TokenEvent> events;
    auto gone = [&] {
      job->cancel();
      return false;
    };
    auto send = [&](ChoiceStream& cs, const ChoiceStream::Delta& d, const Path* finished, const json& logprobs) {
      const bool first = !cs.started;
      cs.started = true;
      return write(sink, sse(chunk_json(*q, m, meta, cs.index(), d, first, finished, logprobs)));
    };
    auto last_write = std::chrono::steady_clock::now();
    for (;;) {
      events.clear();
      const bool done = job->wait(events, std::chrono::milliseconds(100));
      for (Job::TokenEvent& e : events) {
        if (!live || e.path < 0 || e.path >= int64_t(streams.size()) || tok.is_eog(e.token)) continue;
        ChoiceStream& cs = streams[size_t(e.path)];
        Unsent& u = unsent[size_t(e.path)];
        u.ids.push_back(e.token);
        u.logprobs.push_back(e.logprob);
        if (!e.top.empty()) u.top.push_back(std::move(e.top));
        const ChoiceStream::Delta d = cs.push(tok.token_to_piece(e.token, true));
        if (d.empty() && cs.started) continue;
        if (!send(cs, d, nullptr, take_logprobs(size_t(e.path)))) return gone();
        last_write = std::chrono::steady_clock::now();
      }
      if (done) break;
      if (std::chrono::steady_clock::now() - last_write >= kHeartbeat) {
        if (!write(sink, ": keep-alive\n\n")) return gone();
        last_write = std::chrono::steady_clock::now();
      }
    }
    if (job->error()) {
      write(sink, sse(error_json(job_error(job->error()))));
    } else {
      meta.cached_tokens = job->cached_tokens();
      const GenerateResult& r = job->result();
      for (ChoiceStream& cs : streams) {
        const Path* p = nullptr;
        if (live) {
          for (const Path& x : r.paths)
            if (x.index == cs.index()) p = &x;
        } else if (size_t(cs.index()) < r.paths.size()) {
          p = &r.paths[size_t(cs.index())];
        }
        if (!p) continue;
        const json logprobs = live ? take_logprobs(size_t(cs.index())) : q->logprobs ? path_logprobs_json(*q, *p, tok) : json(nullptr);
        if (!send(cs, cs.finish(p->text), p, logprobs)) return gone();
      }
      if (q->include_usage && !write(sink, sse(usage_chunk_json(*q, r, m, meta)))) return gone();
    }
    write(sink, "data: [DONE]\n\n");
    sink.done();
    return true;
  });
}

std::string HttpServer::Impl::metrics_text() const {
  std::string out;
  auto metric = [&](const char* name, const char* type, const char* help, double value) {
    char line[512];
    std::snprintf(line, sizeof line, "# HELP %s %s\n# TYPE %s %s\n%s %.17g\n", name, help, name, type, name, value);
    out += line;
  };
  Scheduler* s = scheduler.load();
  metric("ponder_up", "gauge", "1 once the model is loaded and requests are served.", s ? 1 : 0);
  metric("ponder_requests_rejected_total", "counter", "Requests refused with 429 (queue full).", double(rejected.load()));
  if (!s) return out;
  const SchedulerMetrics m = s->metrics();
  metric("ponder_requests_total", "counter", "Requests accepted.", double(m.requests_total));
  metric("ponder_requests_finished_total", "counter", "Requests that completed.", double(m.requests_finished));
  metric("ponder_requests_cancelled_total", "counter", "Requests cancelled (client gone or shutdown).", double(m.requests_cancelled));
  metric("ponder_requests_failed_total", "counter", "Requests that ended with an error.", double(m.requests_failed));
  metric("ponder_requests_running", "gauge", "Requests decoding now.", m.running);
  metric("ponder_requests_queued", "gauge", "Requests waiting for KV blocks.", m.queued);
  metric("ponder_prompt_tokens_total", "counter", "Prompt tokens of accepted requests.", double(m.prompt_tokens_total));
  metric("ponder_prompt_tokens_cached_total", "counter", "Prompt tokens taken from the prefix cache.", double(m.cached_prompt_tokens_total));
  metric("ponder_generated_tokens_total", "counter", "Tokens generated by every path of finished requests.", double(m.generated_tokens_total));
  metric("ponder_steps_total", "counter", "Batched forward steps.", double(m.steps_total));
  metric("ponder_steps_prompts_only_total", "counter", "Steps that ran a prompt's last piece without the decode tokens.",
         double(m.steps_prompts_only));
  metric("ponder_step_seconds_total", "counter", "Seconds spent in batched forward steps.", m.step_seconds_total);
  metric("ponder_step_seconds_last", "gauge", "Seconds of the last batched forward step.", m.last_step_seconds);
  metric("ponder_kv_blocks_total", "gauge", "KV cache blocks.", m.kv_blocks_total);
  metric("ponder_kv_blocks_used", "gauge", "KV cache blocks in use (by requests or the prefix cache).", m.kv_blocks_used);
  metric("ponder_kv_blocks_free", "gauge", "KV cache blocks free.", m.kv_blocks_free);
  metric("ponder_kv_blocks_cached", "gauge", "KV cache blocks held by the prefix cache.", m.kv_blocks_cached);
  metric("ponder_kv_blocks_cached_idle", "gauge", "Prefix cache blocks no request uses (evictable).", m.kv_blocks_cached_idle);
  return out;
}

HttpServer::HttpServer(ServeOptions options) : impl_(std::make_unique<Impl>()) {
  impl_->options = std::move(options);
  impl_->routes();
}

HttpServer::~HttpServer() { stop(); }

int HttpServer::bind() {
  const int port = impl_->options.port == 0 ? impl_->svr.bind_to_any_port(impl_->options.host)
                                            : (impl_->svr.bind_to_port(impl_->options.host, impl_->options.port) ? impl_->options.port : -1);
  if (port < 0)
    throw InvalidArgument("cannot listen on " + impl_->options.host + ":" + std::to_string(impl_->options.port) +
                          " (address in use, or not an address of this machine)");
  // The library listens with a backlog of 5: a burst of clients would overflow it (their
  // connections stall, then fail). Listening again only raises the backlog.
  if (impl_->listen_fd >= 0) ::listen(impl_->listen_fd, SOMAXCONN);
  return port;
}

void HttpServer::run() { impl_->svr.listen_after_bind(); }

void HttpServer::set_ready(const ServedModel& model, Scheduler& scheduler) {
  impl_->scheduler = &scheduler;
  impl_->model = &model;
}

void HttpServer::stop() { impl_->svr.stop(); }

}  // namespace ponder::server

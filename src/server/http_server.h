#pragma once
// `ponder serve`'s HTTP front end: routes, authentication, limits, server-sent events. HTTP
// threads parse, validate and submit requests and write what the scheduler hands back; they never
// call the model (server/scheduler.h).
//
// Routes: POST /v1/chat/completions, POST /v1/completions (also without /v1), GET /v1/models,
// GET /health (503 while the model loads, then 200), GET /metrics (Prometheus text),
// POST /tokenize, POST /detokenize (llama-server's shapes), GET / (the chat page).
// Errors are OpenAI's {"error": {"message", "type", "param", "code"}}: 400 bad request, 401 bad
// API key, 404 unknown route, 413 body too large, 429 queue full (with Retry-After), 503 loading
// or shutting down.
#include <cstddef>
#include <memory>
#include <string>

#include "server/openai_api.h"
#include "server/scheduler.h"

namespace ponder::server {

struct ServeOptions {
  std::string host = "127.0.0.1";
  int port = 8080;               // 0: any free port (bind() returns it)
  std::string api_key;           // non-empty: every route but /health and / needs "Authorization: Bearer KEY"
  size_t max_body_bytes = 1 << 20;
  int http_threads = 256;        // connections served at once (each streaming request holds one)
};

class HttpServer {
 public:
  explicit HttpServer(ServeOptions options);
  ~HttpServer();
  HttpServer(const HttpServer&) = delete;
  HttpServer& operator=(const HttpServer&) = delete;

  // Binds the socket; returns the port. Throws InvalidArgument naming host and port on failure.
  int bind();
  // Serves until stop() (call from its own thread).
  void run();
  // The model is loaded: the API routes answer and /health says ok. Both must outlive the server.
  void set_ready(const ServedModel& model, Scheduler& scheduler);
  void stop();

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace ponder::server

// ponder serve: the OpenAI-compatible HTTP server (server/http_server.h) over the continuous
// batching scheduler (server/scheduler.h). Listens at once (/health answers 503 while the model
// loads); SIGINT/SIGTERM stop admitting, let running requests finish for --drain seconds, then exit.
#include <csignal>
#include <cstdio>
#include <filesystem>
#include <pthread.h>
#include <thread>

#include "app/commands.h"
#include "core/error.h"
#include "decode/model_runner.h"
#include "formats/chat_template.h"
#include "model/model.h"
#include "server/http_server.h"
#include "server/scheduler.h"

namespace ponder::app {

namespace {

struct ServeArgs {
  std::string model, host = "127.0.0.1", api_key, alias;
  int port = 8080, ctx = 0, kv_blocks = 0, max_queue = 64, threads = 0, prefill_chunk = 64, http_threads = 256;
  double drain = 30;
  size_t max_body = 1 << 20;
  bool no_prefix_cache = false;
};

void run_serve(const ServeArgs& a) {
  if (a.port < 0 || a.port > 65535) throw InvalidArgument("--port must be in [0, 65535], got " + std::to_string(a.port));
  if (a.ctx < 0) throw InvalidArgument("--ctx must be >= 0 (0: the model's, at most 4096), got " + std::to_string(a.ctx));
  if (a.kv_blocks < 0) throw InvalidArgument("--kv-blocks must be >= 0 (0: 8 x --ctx positions), got " + std::to_string(a.kv_blocks));
  if (a.max_queue < 0) throw InvalidArgument("--max-queue must be >= 0, got " + std::to_string(a.max_queue));
  if (a.prefill_chunk <= 0 || a.prefill_chunk % ModelRunner::kBlockSize != 0)
    throw InvalidArgument("--prefill-chunk must be a positive multiple of 16, got " + std::to_string(a.prefill_chunk));
  if (!(a.drain >= 0)) throw InvalidArgument("--drain must be >= 0 seconds, got " + std::to_string(a.drain));
  if (!std::filesystem::exists(a.model)) throw InvalidArgument("-m " + a.model + ": no such file");
  set_threads(a.threads);

  // Signals go to a thread that waits for them; every thread started from here inherits the mask.
  sigset_t stop_signals;
  sigemptyset(&stop_signals);
  sigaddset(&stop_signals, SIGINT);
  sigaddset(&stop_signals, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &stop_signals, nullptr);
  std::signal(SIGPIPE, SIG_IGN);  // a client that hangs up is noticed by a failed write

  server::HttpServer http({.host = a.host, .port = a.port, .api_key = a.api_key, .max_body_bytes = a.max_body,
                           .http_threads = a.http_threads});
  const int port = http.bind();
  std::fprintf(stderr, "ponder: listening on http://%s:%d (loading %s)\n", a.host.c_str(), port, a.model.c_str());
  std::thread listener([&] { http.run(); });

  std::unique_ptr<Model> model;
  std::unique_ptr<server::Scheduler> scheduler;
  server::ServedModel served;
  try {
    // Loaded on a thread that ends once it is done, so that only the scheduler's thread keeps a
    // team of OpenMP threads: libgomp keeps a team for every thread that ran a parallel region, and
    // with more team threads than cores it stops spinning at barriers and sleeps in the kernel
    // instead. Loading on this thread made every forward step 25% slower (Qwen2-0.5B Q8_0, 2 cores:
    // one path 17.5-17.9 against 14.0-14.2 ms, eight paths 38-40 against 31 ms).
    {
      std::exception_ptr load_error;
      std::thread([&] {
        try {
          model = load_model(a.model);
        } catch (...) {
          load_error = std::current_exception();
        }
      }).join();
      if (load_error) std::rethrow_exception(load_error);
    }
    served.model = model.get();
    served.id = a.alias.empty() ? std::filesystem::path(a.model).stem().string() : a.alias;
    served.n_ctx = a.ctx > 0 ? a.ctx : std::min(model->config.n_ctx_train, 4096);
    try {
      served.chat_format = detect_chat_format(model->file);
    } catch (const FormatError&) {
      std::fprintf(stderr, "ponder: note: no chat template ponder knows in %s: /v1/chat/completions is refused\n", a.model.c_str());
    }
    const int64_t blocks = a.kv_blocks > 0 ? a.kv_blocks : (int64_t(served.n_ctx) * 8 + ModelRunner::kBlockSize - 1) / ModelRunner::kBlockSize;
    if (blocks > (int64_t(1) << 31) / ModelRunner::kBlockSize) throw InvalidArgument("--kv-blocks " + std::to_string(blocks) + " is too many");
    const double gib = double(blocks) * ModelRunner::kBlockSize * model->config.n_layer * 2 * model->config.kv_dim() * 4 / double(1 << 30);
    scheduler = std::make_unique<server::Scheduler>(
        *model, server::SchedulerOptions{.kv_blocks = int(blocks), .max_queue = a.max_queue, .prefill_chunk = a.prefill_chunk,
                                         .prefix_cache = !a.no_prefix_cache});
    http.set_ready(served, *scheduler);
    std::fprintf(stderr, "ponder: serving %s as \"%s\": context %d, KV cache %lld blocks of %d positions (%.2f GiB), chat format %s\n",
                 a.model.c_str(), served.id.c_str(), served.n_ctx, (long long)blocks, ModelRunner::kBlockSize, gib,
                 served.chat_format ? chat_format_name(*served.chat_format).c_str() : "none");
  } catch (...) {
    http.stop();
    listener.join();
    throw;
  }

  int sig = 0;
  sigwait(&stop_signals, &sig);
  std::fprintf(stderr, "ponder: %s: finishing running requests (up to %.0f s), then exiting\n", sig == SIGINT ? "SIGINT" : "SIGTERM", a.drain);
  scheduler->shutdown(std::chrono::milliseconds(int64_t(a.drain * 1000)));
  http.stop();
  listener.join();
  std::fprintf(stderr, "ponder: stopped\n");
}

}  // namespace

void add_serve(CLI::App& app) {
  auto* cmd = app.add_subcommand("serve", "Serve a model over an OpenAI-compatible HTTP API (chat, completions, every strategy)");
  auto a = std::make_shared<ServeArgs>();
  cmd->add_option("-m,--model", a->model, "GGUF model file")->required();
  cmd->add_option("--host", a->host, "address to listen on (loopback by default)");
  cmd->add_option("--port", a->port, "port (0: any free port)");
  cmd->add_option("--ctx", a->ctx, "positions per request, prompt and completion (0: the model's context, at most 4096)");
  cmd->add_option("--kv-blocks", a->kv_blocks, "KV cache blocks of 16 positions shared by all requests (0: 8 x --ctx positions)");
  cmd->add_option("--max-queue", a->max_queue, "requests waiting for KV blocks before new ones get 429");
  cmd->add_option("--api-key", a->api_key, "require \"Authorization: Bearer KEY\" on every route but /health and /");
  cmd->add_option("--alias", a->alias, "model name in /v1/models and responses (default: the file name)");
  cmd->add_option("--prefill-chunk", a->prefill_chunk, "prompt tokens per batched step, a multiple of 16: bounds the step time of running streams; prompts are cut, and share cached blocks, at multiples of it");
  cmd->add_option("--max-body", a->max_body, "largest request body in bytes (413 beyond)");
  cmd->add_option("--http-threads", a->http_threads, "connections served at once");
  cmd->add_option("--drain", a->drain, "seconds running requests get to finish after SIGINT/SIGTERM");
  cmd->add_flag("--no-prefix-cache", a->no_prefix_cache, "do not share prompt blocks across requests");
  cmd->add_option("-t,--threads", a->threads, "threads for the forward pass (0: all cores)");
  cmd->callback([a] { run_serve(*a); });
}

}  // namespace ponder::app

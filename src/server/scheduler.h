#pragma once
// Continuous batching: one scheduler thread owns the model's KV pool and runs one batched forward
// per step over every active path of every running request.
//
// Each request's strategy (greedy, sample, beam, best-of, vote: decode/generate.h, unchanged) runs
// on a worker thread of its own against a RequestModel, a LanguageModel whose step() hands its
// inputs to the scheduler and sleeps until the batched forward that includes them is done. The
// scheduler waits until every running worker is asleep in step() (or finished), then builds one
// batch of all their inputs: every decode token, and prompt tokens up to `prefill_chunk` per step
// (a long prompt is prefilled over several steps, so running streams keep a bounded step time).
// A prompt is cut into pieces at fixed multiples of prefill_chunk, whatever else runs: the
// numerics of a chunk depend on its size (the attention order of 1 vs 2+ tokens, and for quantized
// weights the activation grouping llama.cpp uses), so fixed pieces keep a request's output
// independent of the load. Up to prefill_chunk prompt tokens go into a step, at least one piece.
// No model call happens on an HTTP thread; workers touch the pool only under the model lock.
//
// Admission: a request reserves the KV blocks its worst case needs (kv_positions_for: the prompt
// once, each path its new tokens plus a block of copy-on-write slack); it waits in a queue while
// the reservations of the running requests leave too little, and submit() refuses it (QueueFull)
// when the queue is full. So a running request never finds the pool empty.
//
// Prefix sharing: full prompt blocks are kept in a prefix cache keyed by the hash of (the previous
// block's key, this block's tokens), as vLLM's automatic prefix caching does. A new sequence whose
// first step is a prompt starts from the longest cached run of its blocks that ends at a piece
// boundary (so the rest runs in the pieces it would run in without the cache); cached
// blocks no running sequence uses are evicted, least recently used first, when admission needs them.
//
// Batch invariance (DESIGN.md) makes a path's logits independent of the other inputs of its step,
// of how its prompt was chunked and of whether its prefix came from the cache, so a greedy
// request's output does not depend on what else is running.
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <exception>
#include <list>
#include <memory>
#include <mutex>
#include <optional>
#include <stdexcept>
#include <unordered_map>
#include <vector>

#include "decode/generate.h"
#include "decode/model_runner.h"
#include "model/model.h"

namespace ponder::server {

// Thrown by submit() when the queue is full (HTTP 429).
struct QueueFull : std::runtime_error {
  using std::runtime_error::runtime_error;
};
// Thrown inside a cancelled request's worker (client gone, server shutting down).
struct Cancelled : std::runtime_error {
  using std::runtime_error::runtime_error;
};

struct SchedulerOptions {
  int kv_blocks = 0;          // pool size in blocks of ModelRunner::kBlockSize positions
  int max_queue = 64;         // requests waiting for admission before submit() refuses
  int prefill_chunk = 64;     // prompt piece and per-step prompt budget; a multiple of the block size
  bool prefix_cache = true;   // share full prompt blocks across requests
};

struct SchedulerMetrics {
  int64_t requests_total = 0, requests_finished = 0, requests_cancelled = 0, requests_failed = 0;
  int64_t prompt_tokens_total = 0, cached_prompt_tokens_total = 0, generated_tokens_total = 0;
  int64_t steps_total = 0;
  int64_t steps_prompts_only = 0;  // steps that left the running streams' decodes for the next one
  double step_seconds_total = 0, last_step_seconds = 0;
  int running = 0, queued = 0;
  int kv_blocks_total = 0, kv_blocks_used = 0, kv_blocks_free = 0;
  int kv_blocks_cached = 0, kv_blocks_cached_idle = 0;  // held by the prefix cache; of those, used by no request
};

// One request's life, shared by the HTTP thread that submitted it and the scheduler.
class Job {
 public:
  struct TokenEvent {
    int64_t path = 0;
    int32_t token = 0;
    float logprob = 0;
    std::vector<std::pair<int32_t, float>> top;  // when the request asked for top_logprobs
  };

  // Waits up to `timeout` for news; moves the tokens chosen since the last call into `tokens`.
  // True once the job has finished (result() or error() is then set).
  bool wait(std::vector<TokenEvent>& tokens, std::chrono::milliseconds timeout);
  void cancel() { cancelled_ = true; }
  bool cancelled() const { return cancelled_; }

  const GenerateResult& result() const { return *result_; }  // after wait() returned true
  std::exception_ptr error() const { return error_; }         // set instead of result on failure
  int64_t cached_tokens() const { return cached_tokens_; }    // prompt tokens taken from the prefix cache

 private:
  friend class Scheduler;
  friend class RequestModel;
  void push(const Path& path);
  void finish(std::optional<GenerateResult> result, std::exception_ptr error);

  GenerateRequest request_;
  int reserved_blocks_ = 0;
  std::atomic<bool> cancelled_{false};
  std::atomic<int64_t> cached_tokens_{0};
  std::mutex mu_;
  std::condition_variable cv_;
  std::vector<TokenEvent> tokens_;
  bool done_ = false;
  std::optional<GenerateResult> result_;
  std::exception_ptr error_;
};

class Scheduler {
 public:
  Scheduler(const Model& model, SchedulerOptions options);
  ~Scheduler();  // cancels what still runs and waits for it
  Scheduler(const Scheduler&) = delete;
  Scheduler& operator=(const Scheduler&) = delete;

  // Queues a validated request. `stream`: the job records each chosen token (Job::wait).
  // Throws QueueFull when max_queue requests wait, InvalidArgument when the request alone needs
  // more KV blocks than the pool has, Cancelled after shutdown().
  std::shared_ptr<Job> submit(GenerateRequest request, bool stream);

  // Stops admitting, waits up to `drain` for running and queued requests, cancels the rest and
  // waits for their workers.
  void shutdown(std::chrono::milliseconds drain);

  SchedulerMetrics metrics() const;
  int blocks_needed(const GenerateRequest& request) const;
  int kv_blocks() const { return options_.kv_blocks; }

 private:
  friend class RequestModel;
  struct Worker;
  struct Pending;

  void loop();
  void admit_locked();
  bool all_waiting_locked() const;
  void run_step(std::unique_lock<std::mutex>& lk);
  void worker_main(std::shared_ptr<Worker> w);
  void evict_cached_blocks_locked(int needed_free);
  // Prefix cache (under model_mu_).
  int take_cached_prefix(KvSeq& seq, std::span<const int32_t> tokens);
  void remember_prefix(const KvSeq& seq, std::span<const int32_t> tokens);

  SchedulerOptions options_;
  ModelRunner runner_;
  // The logits of a step (the loop thread's; kept so that a step does not map fresh pages for
  // megabytes of rows: a vocabulary of 152K words is 0.6 MB a row).
  std::vector<float> step_logits_;
  bool last_step_prompts_only_ = false;  // the last step left decode tokens out (run_step)

  mutable std::mutex mu_;  // the queue, the running set, the workers' step hand-off, metrics
  std::condition_variable cv_;
  std::deque<std::shared_ptr<Worker>> queue_;
  std::vector<std::shared_ptr<Worker>> running_;
  int reserved_blocks_ = 0;
  bool accepting_ = true, stop_ = false;
  int live_workers_ = 0;
  SchedulerMetrics metrics_;

  mutable std::mutex model_mu_;  // runner_ and the prefix cache
  struct CachedBlock {
    int32_t block;
    std::list<uint64_t>::iterator lru;
  };
  std::unordered_map<uint64_t, CachedBlock> prefix_;  // key -> block (holding one reference)
  std::list<uint64_t> lru_;                            // keys, least recently used first

  std::thread thread_;
};

}  // namespace ponder::server

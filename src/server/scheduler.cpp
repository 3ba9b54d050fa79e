#include "server/scheduler.h"

#include <algorithm>
#include <cstring>
#include <thread>

#include "core/error.h"

namespace ponder::server {

// ---- Job ----

void Job::push(const Path& path) {
  TokenEvent e{.path = path.index, .token = path.tokens.back(), .logprob = path.logprobs.back(), .top = {}};
  if (!path.top_logprobs.empty()) e.top = path.top_logprobs.back();
  {
    std::lock_guard lk(mu_);
    tokens_.push_back(std::move(e));
  }
  cv_.notify_all();
}

void Job::finish(std::optional<GenerateResult> result, std::exception_ptr error) {
  {
    std::lock_guard lk(mu_);
    result_ = std::move(result);
    error_ = error;
    done_ = true;
  }
  cv_.notify_all();
}

bool Job::wait(std::vector<TokenEvent>& tokens, std::chrono::milliseconds timeout) {
  std::unique_lock lk(mu_);
  cv_.wait_for(lk, timeout, [&] { return done_ || !tokens_.empty(); });
  tokens.insert(tokens.end(), std::make_move_iterator(tokens_.begin()), std::make_move_iterator(tokens_.end()));
  tokens_.clear();
  return done_;
}

// ---- the hand-off between a worker's step() and the scheduler ----

// One input of a worker's step, as given; `done` tokens of it have been run.
struct Scheduler::Pending {
  SeqId seq = -1;
  std::vector<int32_t> tokens;
  size_t done = 0;
  bool want_logits = true;
  bool from_start = false;  // the sequence was empty: a prompt, for the prefix cache
  size_t logits_row = 0;    // its row in the worker's logits (want_logits only)
};

struct Scheduler::Worker {
  enum class State { Queued, Working, Waiting, Ready, Finished };
  std::shared_ptr<Job> job;
  State state = State::Queued;
  bool in_flight = false;         // inputs of it are in the forward running now
  std::vector<Pending> pending;   // the step it waits for
  std::vector<float> logits;      // the step's rows
  std::exception_ptr step_error;  // the forward failed
  std::condition_variable cv;     // the worker sleeps here during step()
  std::vector<SeqId> owned;       // sequences it holds (under model_mu_)
};

// The LanguageModel a request's strategy runs against: the model's vocabulary, sequences in the
// shared pool, and a step() that joins the scheduler's next batched forward.
class RequestModel : public LanguageModel {
 public:
  RequestModel(Scheduler& s, Scheduler::Worker& w) : s_(s), w_(w) {}

  int32_t n_vocab() const override { return s_.runner_.n_vocab(); }
  std::span<const int32_t> eog_tokens() const override { return s_.runner_.eog_tokens(); }
  std::string token_text(int32_t id) const override { return s_.runner_.token_text(id); }
  std::vector<int32_t> tokenize(std::string_view text) const override { return s_.runner_.tokenize(text); }

  SeqId new_sequence() override {
    std::lock_guard lk(s_.model_mu_);
    return own(s_.runner_.new_sequence());
  }
  SeqId fork(SeqId seq) override {
    std::lock_guard lk(s_.model_mu_);
    check_owned(seq);
    return own(s_.runner_.fork(seq));
  }
  void release(SeqId seq) override {
    std::lock_guard lk(s_.model_mu_);
    check_owned(seq);
    s_.runner_.release(seq);
    std::erase(w_.owned, seq);
  }
  int length(SeqId seq) const override {
    std::lock_guard lk(s_.model_mu_);
    return s_.runner_.length(seq);
  }

  void step(std::span<const StepInput> inputs, std::vector<float>& logits) override {
    if (w_.job->cancelled()) throw Cancelled("request cancelled");
    std::vector<bool> empty(inputs.size());
    {
      std::lock_guard lk(s_.model_mu_);
      for (size_t i = 0; i < inputs.size(); ++i) {
        check_owned(inputs[i].seq);
        empty[i] = s_.runner_.length(inputs[i].seq) == 0;
      }
    }
    const size_t V = size_t(n_vocab());
    std::unique_lock lk(s_.mu_);
    w_.pending.clear();
    size_t rows = 0;
    for (size_t i = 0; i < inputs.size(); ++i) {
      const StepInput& in = inputs[i];
      if (in.tokens.empty()) throw InvalidArgument("step: an input with no tokens");
      w_.pending.push_back({.seq = in.seq, .tokens = {in.tokens.begin(), in.tokens.end()}, .done = 0,
                            .want_logits = in.want_logits, .from_start = empty[i], .logits_row = rows});
      if (in.want_logits) ++rows;
    }
    w_.logits.resize(rows * V);  // every row is written by the step (no zero fill: 0.6 MB a row)
    w_.step_error = nullptr;
    w_.state = Scheduler::Worker::State::Waiting;
    s_.cv_.notify_all();
    while (!w_.cv.wait_for(lk, std::chrono::milliseconds(50), [&] {
      return w_.state == Scheduler::Worker::State::Ready || (w_.job->cancelled() && !w_.in_flight);
    })) {
    }
    const bool ready = w_.state == Scheduler::Worker::State::Ready;
    w_.state = Scheduler::Worker::State::Working;
    w_.pending.clear();
    if (!ready) throw Cancelled("request cancelled");
    if (w_.step_error) std::rethrow_exception(w_.step_error);
    logits.swap(w_.logits);
  }

  // Everything the strategy left (it threw, or was cancelled between steps).
  void release_all() {
    std::lock_guard lk(s_.model_mu_);
    for (SeqId seq : w_.owned) s_.runner_.release(seq);
    w_.owned.clear();
  }

 private:
  SeqId own(SeqId seq) {
    w_.owned.push_back(seq);
    return seq;
  }
  void check_owned(SeqId seq) const {
    if (std::find(w_.owned.begin(), w_.owned.end(), seq) == w_.owned.end())
      throw InvalidArgument("sequence " + std::to_string(seq) + " does not belong to this request");
  }

  Scheduler& s_;
  Scheduler::Worker& w_;
};

// ---- Scheduler ----

Scheduler::Scheduler(const Model& model, SchedulerOptions options)
    : options_(options), runner_(model, options.kv_blocks * ModelRunner::kBlockSize) {
  if (options_.kv_blocks <= 0) throw InvalidArgument("kv blocks must be > 0, got " + std::to_string(options_.kv_blocks));
  if (options_.max_queue < 0) throw InvalidArgument("max queue must be >= 0, got " + std::to_string(options_.max_queue));
  if (options_.prefill_chunk <= 0 || options_.prefill_chunk % ModelRunner::kBlockSize != 0)
    throw InvalidArgument("prefill chunk must be a positive multiple of " + std::to_string(ModelRunner::kBlockSize) +
                          " tokens (the KV block size), got " + std::to_string(options_.prefill_chunk));
  thread_ = std::thread([this] { loop(); });
}

Scheduler::~Scheduler() { shutdown(std::chrono::milliseconds(0)); }

int Scheduler::blocks_needed(const GenerateRequest& r) const {
  const int positions = kv_positions_for(int64_t(r.prompt.size()), r.strategy, r.stop.max_tokens);
  return int((int64_t(positions) + ModelRunner::kBlockSize - 1) / ModelRunner::kBlockSize);
}

std::shared_ptr<Job> Scheduler::submit(GenerateRequest request, bool stream) {
  auto job = std::make_shared<Job>();
  job->request_ = std::move(request);
  if (stream) job->request_.on_token = [j = job.get()](const Path& path) { j->push(path); };
  job->reserved_blocks_ = blocks_needed(job->request_);
  if (job->reserved_blocks_ > options_.kv_blocks) {
    const std::string have = " and the server has " + std::to_string(options_.kv_blocks);
    if (const auto* m = std::get_if<MctsOptions>(&job->request_.strategy))
      throw InvalidArgument("the request needs up to " + std::to_string(job->reserved_blocks_) + " KV blocks (" +
                            std::to_string(job->request_.prompt.size()) + " prompt tokens, a tree search of " +
                            std::to_string(m->budget_tokens) + " tokens)" + have + ": lower ponder.budget_tokens");
    throw InvalidArgument("the request needs up to " + std::to_string(job->reserved_blocks_) + " KV blocks (" +
                          std::to_string(job->request_.prompt.size()) + " prompt tokens, " +
                          std::to_string(n_paths(job->request_.strategy)) + " paths of up to " +
                          std::to_string(job->request_.stop.max_tokens) + " new tokens)" + have + ": lower max_tokens or n");
  }
  auto w = std::make_shared<Worker>();
  w->job = job;
  std::lock_guard lk(mu_);
  if (!accepting_) throw Cancelled("the server is shutting down");
  queue_.push_back(w);
  admit_locked();
  if (int(queue_.size()) > options_.max_queue) {
    queue_.pop_back();  // admit_locked takes from the front, so the new one is still last
    throw QueueFull(std::to_string(queue_.size()) + " requests are waiting for KV blocks (the limit is " +
                    std::to_string(options_.max_queue) + "); retry later");
  }
  ++metrics_.requests_total;
  metrics_.prompt_tokens_total += int64_t(job->request_.prompt.size());
  cv_.notify_all();
  return job;
}

void Scheduler::admit_locked() {
  while (!queue_.empty()) {
    std::shared_ptr<Worker> w = queue_.front();
    if (w->job->cancelled()) {
      queue_.pop_front();
      ++metrics_.requests_cancelled;
      w->job->finish(std::nullopt, std::make_exception_ptr(Cancelled("request cancelled before it started")));
      continue;
    }
    if (reserved_blocks_ + w->job->reserved_blocks_ > options_.kv_blocks) return;  // first come, first served
    queue_.pop_front();
    reserved_blocks_ += w->job->reserved_blocks_;
    w->state = Worker::State::Working;
    running_.push_back(w);
    ++live_workers_;
    std::thread([this, w] { worker_main(w); }).detach();
  }
}

void Scheduler::worker_main(std::shared_ptr<Worker> w) {
  RequestModel lm(*this, *w);
  std::optional<GenerateResult> result;
  std::exception_ptr error;
  try {
    result = generate(lm, w->job->request_);
  } catch (...) {
    error = std::current_exception();
  }
  lm.release_all();
  {
    std::lock_guard lk(mu_);
    w->state = Worker::State::Finished;
    std::erase(running_, w);
    reserved_blocks_ -= w->job->reserved_blocks_;
    if (result) {
      ++metrics_.requests_finished;
      metrics_.generated_tokens_total += result->tokens_generated;
    } else if (w->job->cancelled()) {
      ++metrics_.requests_cancelled;
    } else {
      ++metrics_.requests_failed;
    }
    w->job->finish(std::move(result), error);
    --live_workers_;
    cv_.notify_all();  // under the lock: once live_workers_ is 0 the scheduler may be destroyed
  }
}

bool Scheduler::all_waiting_locked() const {
  for (const auto& w : running_)
    if (w->state != Worker::State::Waiting) return false;
  return true;
}

void Scheduler::loop() {
  std::unique_lock lk(mu_);
  for (;;) {
    admit_locked();
    if (stop_ && running_.empty() && queue_.empty() && live_workers_ == 0) return;
    bool work = false;
    if (!running_.empty() && all_waiting_locked())
      for (const auto& w : running_) {
        if (w->job->cancelled()) w->cv.notify_all();  // it leaves step() and ends
        else work = true;
      }
    if (work) {
      run_step(lk);
      continue;
    }
    cv_.wait_for(lk, std::chrono::milliseconds(50));
  }
}

void Scheduler::run_step(std::unique_lock<std::mutex>& lk) {
  struct Item {
    Worker* w;
    Pending* p;
    size_t n;  // tokens of p run in this step
  };
  std::vector<Item> items;
  std::vector<StepInput> inputs;
  int budget = options_.prefill_chunk;
  {
    std::lock_guard mk(model_mu_);
    for (const auto& w : running_) {
      if (w->job->cancelled()) continue;
      for (Pending& p : w->pending) {
        if (p.done == 0 && p.from_start && options_.prefix_cache && p.tokens.size() > 1) {
          const int skip = take_cached_prefix(runner_.kv(p.seq), p.tokens);
          p.done = size_t(skip);
          w->job->cached_tokens_ += skip;
          metrics_.cached_prompt_tokens_total += skip;
        }
        const size_t left = p.tokens.size() - p.done;
        if (left == 0) continue;
        // The next piece: up to the next multiple of prefill_chunk (fixed boundaries, so the
        // numerics do not depend on the load). A decode token always goes in; a piece goes in
        // while the step's prompt budget lasts, the first one in any case.
        const size_t P = size_t(options_.prefill_chunk);
        const size_t n = std::min(left, P - p.done % P);
        if (n > 1) {
          if (int(n) > budget && budget < options_.prefill_chunk) continue;  // the next step
          budget -= int(n);
        }
        items.push_back({w.get(), &p, n});
        inputs.push_back({.seq = p.seq, .tokens = std::span<const int32_t>(p.tokens).subspan(p.done, n),
                          .want_logits = p.want_logits && p.done + n == p.tokens.size()});
      }
    }
    // A prompt's last piece runs without the decode tokens: its request's first token then waits
    // for its own tokens only, not for the running streams' (on a 2-core CPU a step is compute
    // bound at that size, so 8 decode tokens add ~16 ms to a 16-token prompt's 29 ms). The streams
    // give up one step to it, never two in a row.
    bool last_piece = false;
    for (const Item& it : items) last_piece |= it.p->tokens.size() > 1 && it.p->done + it.n == it.p->tokens.size();
    size_t kept = items.size();
    if (last_piece && !last_step_prompts_only_) {
      kept = 0;
      for (size_t i = 0; i < items.size(); ++i)
        if (items[i].p->tokens.size() > 1) items[kept] = items[i], inputs[kept] = inputs[i], ++kept;
    }
    last_step_prompts_only_ = kept < items.size();
    items.resize(kept);
    inputs.resize(kept);
    int needed = 0;
    for (const StepInput& in : inputs) needed += runner_.pool().blocks_needed(runner_.kv(in.seq), int(in.tokens.size()));
    if (needed > runner_.pool().n_free()) evict_cached_blocks_locked(needed);
  }
  for (const Item& it : items) it.w->in_flight = true;
  lk.unlock();

  std::vector<float>& logits = step_logits_;
  std::exception_ptr error;
  const auto t0 = std::chrono::steady_clock::now();
  {
    std::lock_guard mk(model_mu_);
    try {
      runner_.step(inputs, logits);
      if (options_.prefix_cache)
        for (const Item& it : items)
          if (it.p->from_start && it.p->done + it.n == it.p->tokens.size()) remember_prefix(runner_.kv(it.p->seq), it.p->tokens);
    } catch (...) {
      error = std::current_exception();
    }
  }
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();

  lk.lock();
  ++metrics_.steps_total;
  if (last_step_prompts_only_) ++metrics_.steps_prompts_only;
  metrics_.step_seconds_total += seconds;
  metrics_.last_step_seconds = seconds;
  const size_t V = size_t(runner_.n_vocab());
  size_t row = 0;
  for (size_t i = 0; i < items.size(); ++i) {
    Pending& p = *items[i].p;
    p.done += items[i].n;
    if (!error && inputs[i].want_logits) {
      std::memcpy(items[i].w->logits.data() + p.logits_row * V, logits.data() + row * V, V * sizeof(float));
      ++row;
    }
  }
  for (const Item& it : items) {
    Worker& w = *it.w;
    w.in_flight = false;
    if (error) w.step_error = error;
    const bool complete = std::all_of(w.pending.begin(), w.pending.end(), [](const Pending& p) { return p.done == p.tokens.size(); });
    if (error || complete) w.state = Worker::State::Ready;
    w.cv.notify_all();
  }
}

// ---- prefix cache (under model_mu_) ----

namespace {
uint64_t block_key(uint64_t parent, std::span<const int32_t> tokens) {
  uint64_t h = parent ^ 0x9e3779b97f4a7c15ull;  // FNV-1a over the parent key and the token ids
  for (int32_t t : tokens) {
    h ^= uint32_t(t);
    h *= 0x100000001b3ull;
    h ^= h >> 29;
  }
  return h;
}
}  // namespace

int Scheduler::take_cached_prefix(KvSeq& seq, std::span<const int32_t> tokens) {
  constexpr size_t bs = ModelRunner::kBlockSize;
  const size_t max_blocks = (tokens.size() - 1) / bs;  // at least one token is run, for its logits
  std::vector<int32_t> found;
  uint64_t key = 0;
  for (size_t n = 0; n < max_blocks; ++n) {
    key = block_key(key, tokens.subspan(n * bs, bs));
    auto it = prefix_.find(key);
    if (it == prefix_.end()) break;
    lru_.splice(lru_.end(), lru_, it->second.lru);  // most recently used last
    found.push_back(it->second.block);
  }
  // Whole pieces only: the rest is then run in the pieces it would have been run in anyway.
  const size_t per_piece = size_t(options_.prefill_chunk) / bs;
  found.resize(found.size() / per_piece * per_piece);
  for (int32_t b : found) {
    runner_.pool().retain(b);
    seq.blocks.push_back(b);
  }
  seq.n_pos = int(found.size() * bs);
  return seq.n_pos;
}

void Scheduler::remember_prefix(const KvSeq& seq, std::span<const int32_t> tokens) {
  constexpr size_t bs = ModelRunner::kBlockSize;
  uint64_t key = 0;
  for (size_t n = 0; n < tokens.size() / bs; ++n) {
    key = block_key(key, tokens.subspan(n * bs, bs));
    if (prefix_.count(key)) continue;
    runner_.pool().retain(seq.blocks[n]);
    lru_.push_back(key);
    prefix_.emplace(key, CachedBlock{seq.blocks[n], std::prev(lru_.end())});
  }
}

void Scheduler::evict_cached_blocks_locked(int needed_free) {
  KvPool& pool = runner_.pool();
  for (auto it = lru_.begin(); it != lru_.end() && pool.n_free() < needed_free;) {
    auto c = prefix_.find(*it);
    if (pool.ref_count(c->second.block) == 1) {  // only the cache holds it
      pool.release(c->second.block);
      prefix_.erase(c);
      it = lru_.erase(it);
    } else {
      ++it;
    }
  }
}

// ---- shutdown and metrics ----

void Scheduler::shutdown(std::chrono::milliseconds drain) {
  std::unique_lock lk(mu_);
  accepting_ = false;
  cv_.wait_for(lk, drain, [&] { return running_.empty() && queue_.empty(); });
  for (const auto& w : queue_) w->job->cancel();
  for (const auto& w : running_) {
    w->job->cancel();
    w->cv.notify_all();
  }
  stop_ = true;
  cv_.notify_all();
  lk.unlock();
  if (thread_.joinable()) thread_.join();
}

SchedulerMetrics Scheduler::metrics() const {
  SchedulerMetrics m;
  {
    std::lock_guard lk(mu_);
    m = metrics_;
    m.running = int(running_.size());
    m.queued = int(queue_.size());
  }
  std::lock_guard mk(model_mu_);
  const KvPool& pool = runner_.pool();
  m.kv_blocks_total = pool.n_blocks();
  m.kv_blocks_free = pool.n_free();
  m.kv_blocks_used = pool.n_used();
  m.kv_blocks_cached = int(prefix_.size());
  for (const auto& [key, c] : prefix_) m.kv_blocks_cached_idle += pool.ref_count(c.block) == 1;
  return m;
}

}  // namespace ponder::server

// The continuous-batching scheduler against decoding alone (decode/generate.h on a ModelRunner of
// its own): many requests at once, prompts prefilled in chunks and taken from the prefix cache
// give bit for bit the paths each request gets alone; admission, the queue limit, cancellation.
#include <gtest/gtest.h>

#include <map>
#include <thread>

#include "core/error.h"
#include "decode/generate.h"
#include "decode/model_runner.h"
#include "server/scheduler.h"
#include "support/shared_data.h"

namespace ponder::server {
namespace {

using ::ponder::testing::shared_path;

const Model& model(const std::string& file) {
  static std::map<std::string, std::unique_ptr<Model>> cache;
  auto& m = cache[file];
  if (!m) m = load_model(shared_path("models/" + file));
  return *m;
}

// What decoding alone gives (a fresh runner holding only this request).
GenerateResult alone(const Model& m, const GenerateRequest& r) {
  ModelRunner runner(m, kv_positions_for(int64_t(r.prompt.size()), 1, n_paths(r.strategy), r.stop.max_tokens));
  return generate(runner, r);
}

const GenerateResult& wait(const std::shared_ptr<Job>& job);

// What the server gives the request when nothing else runs (a fresh scheduler, no prefix cache).
GenerateResult served_alone(const Model& m, const GenerateRequest& r, SchedulerOptions o) {
  o.prefix_cache = false;
  Scheduler s(m, o);
  return wait(s.submit(r, false));
}

const GenerateResult& wait(const std::shared_ptr<Job>& job) {
  std::vector<Job::TokenEvent> ignored;
  while (!job->wait(ignored, std::chrono::milliseconds(100))) ignored.clear();
  if (job->error()) std::rethrow_exception(job->error());
  return job->result();
}

void expect_same(const GenerateResult& a, const GenerateResult& b, const std::string& what) {
  ASSERT_EQ(a.paths.size(), b.paths.size()) << what;
  for (size_t i = 0; i < a.paths.size(); ++i) {
    EXPECT_EQ(a.paths[i].tokens, b.paths[i].tokens) << what << " path " << i;
    EXPECT_EQ(a.paths[i].logprobs, b.paths[i].logprobs) << what << " path " << i << ": log-probs bitwise";
    EXPECT_EQ(a.paths[i].index, b.paths[i].index) << what;
  }
  EXPECT_EQ(a.tokens_generated, b.tokens_generated) << what;
}

// Distinct prompts of different lengths (some longer than a KV block, some sharing a prefix).
std::vector<std::vector<int32_t>> prompts(const Model& m, int n) {
  const char* texts[] = {"Once upon a time", "The cat sat on the mat and looked at the", "Lily wanted to play",
                         "One day, a little girl named Sue went to the park with her mom and dad. They saw"};
  std::vector<std::vector<int32_t>> out;
  for (int i = 0; i < n; ++i) {
    std::string t = texts[i % 4];
    for (int k = 0; k < i / 4; ++k) t += " and then";
    out.push_back(m.tokenizer.encode(t, true, false));
  }
  return out;
}

int blocks_used_by_requests(const Scheduler& s) {
  const SchedulerMetrics m = s.metrics();
  return m.kv_blocks_used - m.kv_blocks_cached_idle;
}

TEST(Scheduler, ConcurrentGreedyRequestsGiveTheSequentialOutputsBitwise) {
  PONDER_REQUIRE_SHARED("models/stories260K.gguf");
  const Model& m = model("stories260K.gguf");
  const auto ps = prompts(m, 16);
  // A small prefill chunk: long prompts are split over steps and share steps with decode tokens.
  const SchedulerOptions o{.kv_blocks = 256, .max_queue = 64, .prefill_chunk = 16};
  std::vector<GenerateResult> expected;
  for (const auto& p : ps) expected.push_back(served_alone(m, {.prompt = p, .strategy = GreedyOptions{}, .stop = {.max_tokens = 24}}, o));
  Scheduler s(m, o);
  std::vector<std::shared_ptr<Job>> jobs(ps.size());
  std::vector<std::thread> clients;
  for (size_t i = 0; i < ps.size(); ++i)
    clients.emplace_back([&, i] { jobs[i] = s.submit({.prompt = ps[i], .strategy = GreedyOptions{}, .stop = {.max_tokens = 24}}, false); });
  for (auto& c : clients) c.join();
  for (size_t i = 0; i < ps.size(); ++i) expect_same(wait(jobs[i]), expected[i], "request " + std::to_string(i));
  const SchedulerMetrics met = s.metrics();
  EXPECT_LT(met.steps_total, 16 * 25) << "requests shared steps";
  EXPECT_EQ(met.requests_finished, 16);
  EXPECT_EQ(blocks_used_by_requests(s), 0) << "every block back (the prefix cache aside)";
}

// A short request that arrives while a stream decodes gets the step of its prompt's last piece
// to itself (the stream's decode token waits one step), and neither output changes.
TEST(Scheduler, APromptsLastPieceRunsWithoutTheRunningStreamsDecodes) {
  PONDER_REQUIRE_SHARED("models/stories260K.gguf");
  const Model& m = model("stories260K.gguf");
  const auto ps = prompts(m, 4);
  const SchedulerOptions o{.kv_blocks = 256, .max_queue = 64, .prefill_chunk = 64};
  const GenerateRequest long_req{.prompt = ps[0], .strategy = GreedyOptions{}, .stop = {.max_tokens = 400}};
  const GenerateRequest short_req{.prompt = ps[3], .strategy = GreedyOptions{}, .stop = {.max_tokens = 4}};
  const GenerateResult want_long = served_alone(m, long_req, o), want_short = served_alone(m, short_req, o);
  // The check needs the stream to outlast the short request. The tiny model's 400 tokens take tens
  // of milliseconds, which a loaded machine (ctest -j) can spend elsewhere between the two
  // submissions: a try where the stream finished first checks the outputs only, and runs again.
  constexpr int kTries = 5;
  for (int attempt = 0; attempt < kTries; ++attempt) {
    Scheduler s(m, o);
    const auto a = s.submit(long_req, true);  // streamed: its tokens show that it is decoding
    std::vector<Job::TokenEvent> seen;
    bool long_done = false;
    while (seen.size() < 2 && !long_done) long_done = a->wait(seen, std::chrono::milliseconds(100));
    EXPECT_EQ(s.metrics().steps_prompts_only, 0) << "nothing was left out of the first request's own prompt step";
    expect_same(wait(s.submit(short_req, false)), want_short, "the short request");
    std::vector<Job::TokenEvent> more;
    long_done = long_done || a->wait(more, std::chrono::milliseconds(0));
    const int64_t prompts_only = s.metrics().steps_prompts_only;
    expect_same(wait(a), want_long, "the stream");
    if (long_done) continue;  // the stream was over before the short request was: nothing to check
    EXPECT_EQ(prompts_only, 1) << "the short prompt's step left the stream's decode out, once";
    return;
  }
  FAIL() << "in " << kTries << " tries the stream always finished before the short request";
}

TEST(Scheduler, EveryStrategyGivesWhatItGivesAlone) {
  PONDER_REQUIRE_SHARED("models/stories260K.gguf");
  const Model& m = model("stories260K.gguf");
  const auto ps = prompts(m, 4);
  const SamplingOptions warm{.temperature = 0.9f, .top_k = 40, .top_p = 0.95f};
  const std::vector<GenerateRequest> reqs = {
      {.prompt = ps[0], .strategy = SampleOptions{.n = 4, .sampling = warm, .seed = 7}, .stop = {.max_tokens = 20}},
      {.prompt = ps[1], .strategy = BeamOptions{.num_beams = 3, .num_return = 2}, .stop = {.max_tokens = 12}},
      {.prompt = ps[2], .strategy = BestOfOptions{.n_samples = 5, .n_return = 2, .sampling = warm, .seed = 3}, .stop = {.max_tokens = 16}},
      {.prompt = ps[3], .strategy = VoteOptions{.n_samples = 6, .sampling = warm, .seed = 11}, .stop = {.max_tokens = 16}},
      {.prompt = ps[0], .strategy = GreedyOptions{}, .stop = {.max_tokens = 30, .stop = {"."}}, .top_logprobs = 3},
  };
  Scheduler s(m, {.kv_blocks = 256});  // prompts within one piece: the same steps as decoding alone
  std::vector<std::shared_ptr<Job>> jobs;
  for (const auto& r : reqs) jobs.push_back(s.submit(r, true));
  for (size_t i = 0; i < reqs.size(); ++i) {
    const GenerateResult& got = wait(jobs[i]);
    const GenerateResult want = alone(m, reqs[i]);
    expect_same(got, want, strategy_name(reqs[i].strategy));
    if (i == 4) {
      ASSERT_EQ(got.paths[0].top_logprobs.size(), got.paths[0].tokens.size());
      EXPECT_EQ(got.paths[0].top_logprobs[0][0].first, got.paths[0].tokens[0]) << "greedy picks the most probable";
    }
  }
  EXPECT_EQ(blocks_used_by_requests(s), 0);
}

TEST(Scheduler, PrefixCacheSkipsSharedBlocksAndChangesNothing) {
  PONDER_REQUIRE_SHARED("models/stories260K.gguf");
  const Model& m = model("stories260K.gguf");
  std::string system = "Once upon a time, there was a little girl named Lily. She loved to play outside in the sun.";
  const auto a = m.tokenizer.encode(system + " One day she saw a", true, false);
  const auto b = m.tokenizer.encode(system + " Her mom said", true, false);
  ASSERT_GT(a.size(), 2u * ModelRunner::kBlockSize);
  const SchedulerOptions o{.kv_blocks = 64, .prefill_chunk = 16};
  Scheduler s(m, o);
  const GenerateRequest ra{.prompt = a, .strategy = GreedyOptions{}, .stop = {.max_tokens = 16}};
  const GenerateRequest rb{.prompt = b, .strategy = SampleOptions{.n = 3, .sampling = {.temperature = 0.8f}, .seed = 5},
                           .stop = {.max_tokens = 16}};
  auto ja = s.submit(ra, false);
  expect_same(wait(ja), served_alone(m, ra, o), "first");
  EXPECT_EQ(ja->cached_tokens(), 0);
  auto jb = s.submit(rb, false);
  expect_same(wait(jb), served_alone(m, rb, o), "second, prefix from the cache");
  // The shared full blocks: the common prefix, rounded down to whole blocks.
  size_t common = 0;
  while (common < a.size() && common < b.size() && a[common] == b[common]) ++common;
  EXPECT_EQ(jb->cached_tokens(), int64_t(common / ModelRunner::kBlockSize * ModelRunner::kBlockSize));
  auto ja2 = s.submit(ra, false);
  expect_same(wait(ja2), served_alone(m, ra, o), "the same prompt again");
  EXPECT_EQ(ja2->cached_tokens(), int64_t((a.size() - 1) / ModelRunner::kBlockSize * ModelRunner::kBlockSize));
  const SchedulerMetrics met = s.metrics();
  EXPECT_GT(met.kv_blocks_cached, 0);
  EXPECT_EQ(met.kv_blocks_cached_idle, met.kv_blocks_cached) << "no request holds cached blocks any more";
  EXPECT_EQ(blocks_used_by_requests(s), 0);
}

TEST(Scheduler, CachedBlocksAreEvictedWhenAdmissionNeedsThem) {
  PONDER_REQUIRE_SHARED("models/stories260K.gguf");
  const Model& m = model("stories260K.gguf");
  const SchedulerOptions o{.kv_blocks = 12, .prefill_chunk = 16};
  Scheduler s(m, o);
  for (int i = 0; i < 6; ++i) {  // each prompt leaves blocks in the cache; the pool is small
    std::vector<int32_t> p = {1};
    for (int k = 0; k < 40; ++k) p.push_back(int32_t(10 + (i * 41 + k) % 400));
    const GenerateRequest r{.prompt = p, .strategy = GreedyOptions{}, .stop = {.max_tokens = 8}};
    expect_same(wait(s.submit(r, false)), served_alone(m, r, o), "prompt " + std::to_string(i));
  }
  EXPECT_EQ(blocks_used_by_requests(s), 0);
}

TEST(Scheduler, CancellationFreesTheBlocksAtOnce) {
  PONDER_REQUIRE_SHARED("models/stories260K.gguf");
  const Model& m = model("stories260K.gguf");
  Scheduler s(m, {.kv_blocks = 128});
  auto job = s.submit({.prompt = prompts(m, 1)[0], .strategy = SampleOptions{.n = 4, .seed = 1}, .stop = {.max_tokens = 400}}, true);
  std::vector<Job::TokenEvent> tokens;
  while (tokens.size() < 8) ASSERT_FALSE(job->wait(tokens, std::chrono::milliseconds(1000))) << "finished before the cancel";
  EXPECT_GT(blocks_used_by_requests(s), 0);
  job->cancel();
  while (!job->wait(tokens, std::chrono::milliseconds(100))) {
  }
  ASSERT_TRUE(job->error());
  EXPECT_THROW(std::rethrow_exception(job->error()), Cancelled);
  EXPECT_EQ(blocks_used_by_requests(s), 0);
  EXPECT_EQ(s.metrics().requests_cancelled, 1);
}

TEST(Scheduler, AdmissionWaitsForBlocksAndTheQueueHasALimit) {
  PONDER_REQUIRE_SHARED("models/stories260K.gguf");
  const Model& m = model("stories260K.gguf");
  const auto p = prompts(m, 1)[0];
  const GenerateRequest big{.prompt = p, .strategy = SampleOptions{.n = 2, .seed = 1}, .stop = {.max_tokens = 100}};
  Scheduler probe(m, {.kv_blocks = 1000});
  const int need = probe.blocks_needed(big);
  // Room for one such request at a time, and one more waiting.
  Scheduler s(m, {.kv_blocks = need + need / 2, .max_queue = 1});
  auto first = s.submit(big, false);
  auto second = s.submit(big, false);
  EXPECT_THROW(s.submit(big, false), QueueFull);
  EXPECT_EQ(s.metrics().queued, 1);
  expect_same(wait(first), alone(m, big), "first");
  expect_same(wait(second), alone(m, big), "second, admitted when the first ended");
  // A request larger than the whole pool is refused up front.
  const GenerateRequest huge{.prompt = p, .strategy = SampleOptions{.n = 8}, .stop = {.max_tokens = 400}};
  EXPECT_THROW(s.submit(huge, false), InvalidArgument);
}

TEST(Scheduler, ShutdownCancelsWhatIsLeftAndRefusesNewRequests) {
  PONDER_REQUIRE_SHARED("models/stories260K.gguf");
  const Model& m = model("stories260K.gguf");
  Scheduler s(m, {.kv_blocks = 128});
  auto job = s.submit({.prompt = prompts(m, 1)[0], .strategy = SampleOptions{.n = 2}, .stop = {.max_tokens = 400}}, false);
  s.shutdown(std::chrono::milliseconds(0));
  std::vector<Job::TokenEvent> ignored;
  EXPECT_TRUE(job->wait(ignored, std::chrono::milliseconds(0))) << "shutdown waits for the workers";
  EXPECT_TRUE(job->error());
  EXPECT_THROW(s.submit({.prompt = {1}, .strategy = GreedyOptions{}, .stop = {.max_tokens = 1}}, false), Cancelled);
}

}  // namespace
}  // namespace ponder::server

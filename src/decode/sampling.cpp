#include "decode/sampling.h"

#include <algorithm>
#include <array>
#include <cassert>
#include <cmath>
#include <functional>
#include <limits>
#include <sstream>
#include <string>

#include "core/error.h"
#include "kernels/activation.h"

namespace ponder {

namespace {

// The one candidate order: larger logit first, lower id first on ties. It is a strict total order
// (ids are unique, and assign() turns NaN into -inf), so nth_element, partition and sort all
// agree on which candidates come first, and results do not depend on the algorithm.
bool before(const Candidate& a, const Candidate& b) {
  return a.logit > b.logit || (a.logit == b.logit && a.id < b.id);
}

// top_p is a float and the mass a sum of float probabilities: a mass within this of p counts as
// reaching it, so that probabilities 0.5, 0.3, 0.2 with p = 0.8 keep two whatever the rounding.
constexpr double kTopPSlack = 1e-6;
// Top-k and top-p first gather the few largest logits to the front of the candidates, and sort
// only that front. Up to kHeapMax of them come through a threshold found with a heap on the stack
// (gather_first); top-p tries 64 then kHeapMax, and beyond that picks its front from a histogram
// of the probability mass by distance below the max logit (gather_mass).
constexpr size_t kHeapMax = 1024;
constexpr size_t kTopPFirst = 64;
constexpr size_t kBuckets = 2048;
constexpr float kBucketsPerNat = 64;  // the buckets span 32 nats; below that p < 1e-13 p_max

std::string to_text(double v) {
  std::ostringstream s;
  s << v;
  return s.str();
}

// Throws "<field> must be <range>, got <value>" unless ok (written so NaN fails every check).
void require(bool ok, const char* field, const char* range, double got) {
  if (!ok) throw InvalidArgument(std::string(field) + " must be " + range + ", got " + to_text(got));
}

// The candidate with this id, or nullptr. Right after assign() the items are in id order, so this
// is one index (the case of stages 1-3 in Sampler); on a reordered or shrunk set it scans.
Candidate* find_id(Candidates& c, int32_t id) {
  if (id >= 0 && size_t(id) < c.items.size() && c.items[size_t(id)].id == id) return &c.items[size_t(id)];
  for (Candidate& x : c.items)
    if (x.id == id) return &x;
  return nullptr;
}

bool appears(const std::unordered_map<int32_t, int32_t>& counts, int32_t id) {
  const auto it = counts.find(id);
  return it != counts.end() && it->second > 0;
}

// The largest logit (-inf when empty). Four running maxima: a single chain would wait out the
// latency of every max instruction, 151,936 times.
float max_logit(std::span<const Candidate> items) {
  float m[4] = {-INFINITY, -INFINITY, -INFINITY, -INFINITY};
  size_t i = 0;
  for (; i + 4 <= items.size(); i += 4)
    for (size_t j = 0; j < 4; ++j) m[j] = std::max(m[j], items[i + j].logit);
  for (; i < items.size(); ++i) m[0] = std::max(m[0], items[i].logit);
  return std::max(std::max(m[0], m[1]), std::max(m[2], m[3]));
}

// pick_argmax over the logits as Candidates::assign would list them (a NaN as -inf): the lowest
// id holding the largest logit.
int32_t argmax_logit(std::span<const float> logits) {
  // One pass in 16 lanes, each keeping its largest value and where it first saw it (a NaN never
  // passes the strict >); then the largest value's lowest position over the lanes.
  constexpr size_t kLanes = 16;
  float m[kLanes];
  uint32_t at[kLanes];
  std::fill(m, m + kLanes, -INFINITY);
  std::fill(at, at + kLanes, 0u);
  size_t i = 0;
  for (; i + kLanes <= logits.size(); i += kLanes)
    for (size_t j = 0; j < kLanes; ++j) {
      const float v = logits[i + j];
      at[j] = v > m[j] ? uint32_t(i + j) : at[j];
      m[j] = v > m[j] ? v : m[j];
    }
  for (; i < logits.size(); ++i)
    if (logits[i] > m[0]) m[0] = logits[i], at[0] = uint32_t(i);
  float top = -INFINITY;
  for (float v : m) top = std::max(top, v);
  if (top == -INFINITY) return 0;  // every logit -inf or NaN (-inf as a candidate): the lowest id
  uint32_t best = std::numeric_limits<uint32_t>::max();
  for (size_t j = 0; j < kLanes; ++j)
    if (m[j] == top) best = std::min(best, at[j]);
  return int32_t(best);
}

// The n-th largest logit (1 <= n <= min(size, kHeapMax)), in one pass that keeps the n largest
// seen so far in a min-heap: after the first few thousand, nearly every candidate loses the one
// comparison with the heap's smallest, so this costs about one compare per candidate.
float nth_largest_logit(std::span<const Candidate> items, size_t n) {
  std::array<float, kHeapMax> heap;
  const auto first = heap.begin(), last = heap.begin() + std::ptrdiff_t(n);
  for (size_t i = 0; i < n; ++i) heap[i] = items[i].logit;
  std::make_heap(first, last, std::greater<float>());
  for (size_t i = n; i < items.size(); ++i) {
    if (!(items[i].logit > heap[0])) continue;
    std::pop_heap(first, last, std::greater<float>());
    *(last - 1) = items[i].logit;
    std::push_heap(first, last, std::greater<float>());
  }
  return heap[0];
}

// Moves to the front of c candidates that come first in the sorted order, at least n of them
// (more when logits tie with the n-th), in no particular order; returns how many.
size_t gather_first(Candidates& c, size_t n) {
  if (n >= c.items.size()) return c.items.size();
  if (n > kHeapMax) {
    std::nth_element(c.items.begin(), c.items.begin() + std::ptrdiff_t(n), c.items.end(), before);
    return n;
  }
  const float t = nth_largest_logit(c.items, n);
  const auto front_end =
      std::partition(c.items.begin(), c.items.end(), [t](const Candidate& x) { return x.logit >= t; });
  return size_t(front_end - c.items.begin());
}

// As gather_first, but the front is the fewest top buckets whose probability (p filled) reaches
// mass, buckets being 1/64 nat slices below the max logit, the last one open. One pass and one
// partition, however large the front. Top-p comes here only for a flat distribution (a nucleus
// over kHeapMax candidates), whose logits lie well within the 32 nats.
size_t gather_mass(Candidates& c, double mass) {
  const float top = max_logit(c.items);
  const auto bucket = [top](float logit) {
    const float d = (top - logit) * kBucketsPerNat;
    return d < float(kBuckets) ? size_t(d) : kBuckets;  // d >= 0: top is the max
  };
  std::array<double, kBuckets + 1> hist{};
  for (const Candidate& x : c.items) hist[bucket(x.logit)] += x.p;
  double sum = 0;
  size_t last = 0;
  for (; last < kBuckets; ++last)
    if ((sum += hist[last]) >= mass) break;
  if (last == kBuckets) return c.items.size();  // the open bucket is needed too: everything
  const auto front_end = std::partition(c.items.begin(), c.items.end(),
                                        [&](const Candidate& x) { return bucket(x.logit) <= last; });
  return size_t(front_end - c.items.begin());
}

double mass_of(std::span<const Candidate> items) {
  double mass = 0;
  for (const Candidate& x : items) mass += x.p;
  return mass;
}

}  // namespace

void SamplingOptions::validate(int32_t n_vocab) const {
  require(temperature >= 0.0f && temperature < INFINITY, "temperature", "finite and >= 0 (0: greedy)", temperature);
  require(top_k >= 0, "top_k", ">= 0 (0: off)", top_k);
  require(top_p > 0.0f && top_p <= 1.0f, "top_p", "in (0, 1]", top_p);
  require(min_p >= 0.0f && min_p <= 1.0f, "min_p", "in [0, 1]", min_p);
  require(repetition_penalty > 0.0f && repetition_penalty < INFINITY, "repetition_penalty", "finite and > 0 (1: off)",
          repetition_penalty);
  require(frequency_penalty >= -2.0f && frequency_penalty <= 2.0f, "frequency_penalty", "in [-2, 2]",
          frequency_penalty);
  require(presence_penalty >= -2.0f && presence_penalty <= 2.0f, "presence_penalty", "in [-2, 2]",
          presence_penalty);
  for (const auto& [id, bias] : logit_bias) {
    if (id < 0 || id >= n_vocab)
      throw InvalidArgument("logit_bias token id must be in [0, " + std::to_string(n_vocab) + "), got " +
                            std::to_string(id));
    // -inf bans a token; +inf or NaN would turn logits into NaN (inf - inf in the softmax).
    if (!(bias < INFINITY))
      throw InvalidArgument("logit_bias for token " + std::to_string(id) + " must be below +inf, got " +
                            to_text(bias));
  }
}

// ---- Candidates ----

void Candidates::assign(std::span<const float> logits) {
  items.resize(logits.size());  // keeps the capacity: no allocation once it has held V items
  // A NaN logit (a model bug) would break every ordering below, and std::sort with a broken order
  // may read out of bounds; it becomes -inf, a token never chosen.
  for (size_t i = 0; i < logits.size(); ++i) {
    const float logit = std::isnan(logits[i]) ? -INFINITY : logits[i];
    items[i] = {.id = int32_t(i), .logit = logit, .p = 0};
  }
  sorted = false;
}

void Candidates::sort_desc() {
  if (!sorted) std::sort(items.begin(), items.end(), before);
  sorted = true;
}

// p is only refreshed here (and by pick_draw, which calls this): the stages that drop candidates
// leave it stale rather than pay an exp per candidate they do not need.
void Candidates::softmax() {
  const float top = max_logit(items);
  if (!(top > -INFINITY)) {
    for (Candidate& x : items) x.p = 0;  // every candidate masked: there is no distribution
    return;
  }
  // Float terms, double sums (151,936 float additions would lose digits); four sums, added in a
  // fixed order at the end, so the chain of additions does not set the pace.
  // The exponentials are computed in blocks with the vectorized exp of kernels/activation.
  double sum[4] = {0, 0, 0, 0};
  constexpr size_t kBlock = 256;
  float buf[kBlock];
  for (size_t i0 = 0; i0 < items.size(); i0 += kBlock) {
    const size_t m = std::min(kBlock, items.size() - i0);
    for (size_t j = 0; j < m; ++j) buf[j] = items[i0 + j].logit;
    exp_shifted(buf, int64_t(m), top);
    for (size_t j = 0; j < m; ++j) {
      items[i0 + j].p = buf[j];
      sum[(i0 + j) % 4] += buf[j];
    }
  }
  const float inv = float(1.0 / ((sum[0] + sum[1]) + (sum[2] + sum[3])));
  for (Candidate& x : items) x.p *= inv;
}

// ---- TokenCounts ----

void TokenCounts::add_prompt(std::span<const int32_t> ids) {
  for (int32_t id : ids) ++prompt[id];
}

void TokenCounts::add_generated(int32_t id) { ++generated[id]; }

// ---- stages 1-3: edits of the listed ids only ----

void apply_logit_bias(Candidates& c, std::span<const std::pair<int32_t, float>> bias) {
  for (const auto& [id, b] : bias)  // an id listed twice gets both biases
    if (Candidate* x = find_id(c, id)) x->logit += b;
  if (!bias.empty()) c.sorted = false;
}

void apply_repetition_penalty(Candidates& c, const TokenCounts& counts, float penalty) {
  if (penalty == 1.0f) return;
  // Dividing a positive logit and multiplying a negative one both lower it (for penalty > 1);
  // plain division would raise a negative logit. Each id is penalized once, however often it occurs.
  const auto penalize = [&](int32_t id) {
    if (Candidate* x = find_id(c, id)) x->logit = x->logit > 0 ? x->logit / penalty : x->logit * penalty;
  };
  for (const auto& [id, n] : counts.prompt)
    if (n > 0) penalize(id);
  for (const auto& [id, n] : counts.generated)
    if (n > 0 && !appears(counts.prompt, id)) penalize(id);
  c.sorted = false;
}

void apply_frequency_presence(Candidates& c, const TokenCounts& counts, float frequency, float presence) {
  if (frequency == 0.0f && presence == 0.0f) return;
  for (const auto& [id, n] : counts.generated)  // the prompt does not count, as in OpenAI's API
    if (n > 0)
      if (Candidate* x = find_id(c, id)) x->logit -= float(n) * frequency + presence;
  c.sorted = false;
}

// ---- stages 4-7 ----

void apply_temperature(Candidates& c, float temperature) {
  assert(temperature > 0.0f);
  for (Candidate& x : c.items) x.logit /= temperature;
  c.sorted = false;  // rounding can turn two close logits into a tie in the wrong id order
}

void apply_top_k(Candidates& c, int k) {
  if (k <= 0 || size_t(k) >= c.items.size()) return;
  if (!c.sorted) {
    // The front holds the k first and maybe some ties with the k-th; pick and sort within it.
    const auto front_end = c.items.begin() + std::ptrdiff_t(gather_first(c, size_t(k)));
    const auto kth = c.items.begin() + k;
    std::nth_element(c.items.begin(), kth, front_end, before);
    std::sort(c.items.begin(), kth, before);
  }
  c.items.resize(size_t(k));
  c.sorted = true;
}

void apply_top_p(Candidates& c, float p) {
  if (p >= 1.0f || c.items.size() <= 1) return;
  c.softmax();  // probabilities over the current set; does not reorder
  const double target = double(p) - kTopPSlack;
  if (!c.sorted) {
    // A front of the largest logits whose mass reaches p holds the nucleus; sort only that.
    size_t front = gather_first(c, kTopPFirst);
    if (mass_of({c.items.data(), front}) < target) front = gather_first(c, kHeapMax);
    if (mass_of({c.items.data(), front}) < target) front = gather_mass(c, target);
    c.items.resize(front);
    std::sort(c.items.begin(), c.items.end(), before);
    c.sorted = true;
  }
  double mass = 0;
  for (size_t i = 0; i < c.items.size(); ++i) {
    mass += c.items[i].p;
    if (mass >= target) {
      c.items.resize(i + 1);
      return;
    }
  }
  // Only rounding gets here (the front's mass reached p in another order): keep the front.
}

void apply_min_p(Candidates& c, float min_p) {
  if (min_p <= 0.0f || c.items.empty()) return;
  const float top = c.sorted ? c.items.front().logit : max_logit(c.items);
  // p / p_max = exp(logit - top): the normalizer cancels, so p < min_p * p_max is
  // logit < top + log(min_p), one comparison per candidate and no exp. The max always stays.
  const float cut = top + std::log(min_p);
  std::erase_if(c.items, [cut](const Candidate& x) { return x.logit < cut; });  // keeps the order
}

// ---- pickers ----

int32_t pick_argmax(const Candidates& c) {
  assert(!c.items.empty());
  if (c.sorted) return c.items.front().id;
  // Two cheap passes (the max, then the lowest id holding it) rather than one branchy one.
  const float top = max_logit(c.items);
  int32_t best = std::numeric_limits<int32_t>::max();
  for (const Candidate& x : c.items)
    if (x.logit == top) best = std::min(best, x.id);
  return best;
}

int32_t pick_draw(Candidates& c, Rng& rng) {
  assert(!c.items.empty());
  c.softmax();
  const double u = rng.uniform();  // always one draw per pick, so streams stay aligned across paths
  double cumulative = 0;
  for (const Candidate& x : c.items) {
    cumulative += x.p;
    if (cumulative > u) return x.id;  // a candidate with p == 0 can never pass here
  }
  // The probabilities summed to just below u through rounding: take the last drawable candidate.
  for (auto it = c.items.rbegin(); it != c.items.rend(); ++it)
    if (it->p > 0) return it->id;
  return pick_argmax(c);  // every logit was -inf
}

// ---- Sampler ----

Sampler::Sampler(SamplingOptions opt, Rng rng) : opt_(std::move(opt)), rng_(rng) {}

void Sampler::set_prompt(std::span<const int32_t> prompt) {
  counts_.prompt.clear();
  counts_.add_prompt(prompt);
}

void Sampler::penalize(std::span<const float> logits) {
  cand_.assign(logits);
  apply_logit_bias(cand_, opt_.logit_bias);
  apply_repetition_penalty(cand_, counts_, opt_.repetition_penalty);
  apply_frequency_presence(cand_, counts_, opt_.frequency_penalty, opt_.presence_penalty);
}

int32_t Sampler::sample(std::span<const float> logits) {
  if (logits.empty()) throw InvalidArgument("sample: the logits are empty (n_vocab 0)");
  if (opt_.greedy() && opt_.logit_bias.empty() && opt_.repetition_penalty == 1.0f && opt_.frequency_penalty == 0.0f &&
      opt_.presence_penalty == 0.0f) {
    // Nothing edits the logits: pick_argmax's choice read off them directly, without building the
    // V candidates (a server step of 8 greedy streams spent ~1 ms of CPU on those copies).
    const int32_t id = argmax_logit(logits);
    accept(id);
    return id;
  }
  penalize(logits);
  int32_t id;
  if (opt_.greedy()) {
    id = pick_argmax(cand_);  // greedy draws no random number
  } else {
    if (opt_.temperature != 1.0f) apply_temperature(cand_, opt_.temperature);
    apply_top_k(cand_, opt_.top_k);
    apply_top_p(cand_, opt_.top_p);
    apply_min_p(cand_, opt_.min_p);
    id = pick_draw(cand_, rng_);
  }
  accept(id);
  return id;
}

void Sampler::accept(int32_t id) { counts_.add_generated(id); }

}  // namespace ponder

#include "decode/beam.h"

#include <algorithm>
#include <cmath>
#include <numeric>

#include "core/error.h"
#include "decode/path_text.h"
#include "kernels/activation.h"

namespace ponder {

namespace {

constexpr double kExcluded = -1.0e9;  // transformers' mask value, added to exclude a candidate

struct Hypothesis {
  SeqId seq = -1;                 // running beams only: the KV of every token but `pending`
  std::vector<int32_t> tokens;
  std::vector<float> logprobs;
  double score = 0;               // running: sum of log-probs (+ exclusions); finished: normalized
  double sum_logprob = 0;
  PathText text;
  bool finished = false;          // finished slots only: a real hypothesis
  FinishReason finish = FinishReason::Length;
};

struct Continuation {
  int beam;          // parent running beam
  int32_t token;
  double score;      // parent score + log-prob
  float logprob;
  bool hits_stop;    // ends here: EOS, stop string or length limit
  FinishReason finish;
};

// Log-probs of one beam's next token: (processed) log-softmax of its logits. (V)
void beam_logprobs(std::vector<double>& out, std::span<const float> logits, const BeamOptions& opt, Candidates& scratch) {
  const double lse = log_sum_exp(logits.data(), int64_t(logits.size()));
  out.resize(logits.size());
  for (size_t v = 0; v < logits.size(); ++v) out[v] = double(logits[v]) - lse;
  if (!opt.do_sample) return;
  // Sampling beams: the warpers act on the log-probs (temperature, top-k, top-p), the rest -inf.
  std::vector<float> lp(out.begin(), out.end());
  scratch.assign(lp);
  const SamplingOptions& s = opt.sampling;
  if (s.temperature > 0) apply_temperature(scratch, s.temperature);
  apply_top_k(scratch, s.top_k);
  apply_top_p(scratch, s.top_p);
  apply_min_p(scratch, s.min_p);
  std::fill(out.begin(), out.end(), -INFINITY);
  for (const Candidate& c : scratch.items) out[size_t(c.id)] = c.logit;
}

// The `keep` best (score, then lower flat index) continuations over all beams.
std::vector<std::pair<double, int64_t>> top_continuations(const std::vector<std::vector<double>>& lp,
                                                          const std::vector<Hypothesis>& running, size_t keep) {
  std::vector<std::pair<double, int64_t>> all;  // (accumulated score, flat index beam * V + token)
  const int64_t V = int64_t(lp[0].size());
  for (size_t b = 0; b < running.size(); ++b) {
    std::vector<int64_t> idx(static_cast<size_t>(V));
    std::iota(idx.begin(), idx.end(), 0);
    const size_t k = std::min(keep, size_t(V));
    std::partial_sort(idx.begin(), idx.begin() + ptrdiff_t(k), idx.end(), [&](int64_t a, int64_t c) {
      return lp[b][size_t(a)] > lp[b][size_t(c)] || (lp[b][size_t(a)] == lp[b][size_t(c)] && a < c);
    });
    for (size_t i = 0; i < k; ++i) all.emplace_back(lp[b][size_t(idx[i])] + running[b].score, int64_t(b) * V + idx[i]);
  }
  std::sort(all.begin(), all.end(), [](const auto& a, const auto& c) { return a.first > c.first || (a.first == c.first && a.second < c.second); });
  all.resize(std::min(keep, all.size()));
  return all;
}

// Sampling beams: `keep` draws without replacement from softmax(accumulated scores).
std::vector<std::pair<double, int64_t>> sample_continuations(const std::vector<std::vector<double>>& lp,
                                                             const std::vector<Hypothesis>& running, size_t keep,
                                                             Rng& rng) {
  const int64_t V = int64_t(lp[0].size());
  std::vector<double> w;
  double mx = -INFINITY;
  for (size_t b = 0; b < running.size(); ++b)
    for (int64_t v = 0; v < V; ++v) mx = std::max(mx, lp[b][size_t(v)] + running[b].score);
  for (size_t b = 0; b < running.size(); ++b)
    for (int64_t v = 0; v < V; ++v) w.push_back(std::exp(lp[b][size_t(v)] + running[b].score - mx));
  std::vector<std::pair<double, int64_t>> out;
  for (size_t k = 0; k < keep; ++k) {
    const double total = std::accumulate(w.begin(), w.end(), 0.0);
    if (!(total > 0)) break;
    double u = rng.uniform() * total;
    size_t pick = w.size() - 1;
    for (size_t i = 0; i < w.size(); ++i) {
      if (u < w[i]) { pick = i; break; }
      u -= w[i];
    }
    while (w[pick] == 0 && pick > 0) --pick;
    out.emplace_back(lp[pick / size_t(V)][pick % size_t(V)] + running[pick / size_t(V)].score, int64_t(pick));
    w[pick] = 0;
  }
  return out;
}

}  // namespace

std::vector<Path> beam_search(LanguageModel& lm, std::span<const int32_t> prompt, const BeamOptions& opt,
                              const StopOptions& stop, int64_t* tokens_generated) {
  if (prompt.empty()) throw InvalidArgument("the prompt has no tokens");
  const int nb = opt.num_beams;
  const size_t V = size_t(lm.n_vocab());
  const size_t keep = size_t(std::max<size_t>(2, 1 + lm.eog_tokens().size()) * size_t(nb));
  const double lp_exp = opt.length_penalty;
  const int max_new = stop.max_tokens;
  Rng rng(opt.seed);
  Candidates scratch;

  std::vector<Hypothesis> running(size_t(nb), Hypothesis{.text = PathText(stop)});
  std::vector<Hypothesis> finished(size_t(nb), Hypothesis{.score = kExcluded, .text = PathText(stop)});
  for (int b = 1; b < nb; ++b) running[size_t(b)].score = kExcluded;
  bool heuristic_unsatisfied = true;

  std::vector<float> logits;
  const SeqId root = lm.new_sequence();
  const StepInput prefill{.seq = root, .tokens = prompt};
  try {
    lm.step({&prefill, 1}, logits);
  } catch (...) {
    lm.release(root);
    throw;
  }
  // All beams start as the prompt: the root's one logits row serves every one of them at the
  // first step; after that running beam b has row b. Sampling beams may shrink the running set,
  // so only running.size() beams (and rows) exist at a step.
  bool first_step = true;
  std::vector<std::vector<double>> lp(static_cast<size_t>(nb));
  int cur = 0;  // tokens generated so far
  int64_t n_generated = 0;
  for (Hypothesis& h : running) h.seq = root;
  auto distinct_seqs = [&] {
    std::vector<SeqId> seqs;
    for (const Hypothesis& h : running)
      if (std::find(seqs.begin(), seqs.end(), h.seq) == seqs.end()) seqs.push_back(h.seq);
    return seqs;
  };
  auto release_running = [&] {
    for (SeqId s : distinct_seqs()) lm.release(s);
  };

  try {
    while (max_new > 0) {
      for (size_t b = 0; b < running.size(); ++b)
        beam_logprobs(lp[b], std::span<const float>(logits.data() + (first_step ? 0 : b) * V, V), opt, scratch);
      first_step = false;
      const auto top = opt.do_sample ? sample_continuations(lp, running, keep, rng) : top_continuations(lp, running, keep);

      std::vector<Continuation> cont;
      bool all_hit = true;
      for (const auto& [score, flat] : top) {
        const int b = int(flat / int64_t(V));
        const auto tok = int32_t(flat % int64_t(V));
        Continuation c{.beam = b, .token = tok, .score = score, .logprob = float(lp[size_t(b)][size_t(tok)]),
                       .hits_stop = false, .finish = FinishReason::Length};
        if (lm.is_eog(tok)) {
          c.hits_stop = true, c.finish = FinishReason::Eos;
        } else {
          PathText t = running[size_t(b)].text;
          if (t.append(lm.token_text(tok))) c.hits_stop = true, c.finish = FinishReason::Stop;
          else if (cur + 1 >= max_new) c.hits_stop = true, c.finish = FinishReason::Length;
        }
        all_hit = all_hit && c.hits_stop;
        cont.push_back(c);
      }

      auto extend = [&](const Hypothesis& parent, const Continuation& c) {
        Hypothesis h;
        h.tokens = parent.tokens;
        h.tokens.push_back(c.token);
        h.logprobs = parent.logprobs;
        h.logprobs.push_back(c.logprob);
        h.sum_logprob = c.score;
        h.text = parent.text;
        if (!lm.is_eog(c.token)) h.text.append(lm.token_text(c.token));
        return h;
      };

      // Finished hypotheses: continuations that end and rank within the first num_beams.
      bool all_finished = std::all_of(finished.begin(), finished.end(), [](const Hypothesis& h) { return h.finished; });
      const bool beams_full = all_finished && opt.early_stopping == EarlyStopping::True;
      std::vector<std::pair<double, int>> merged;  // (score, index: < nb existing, else nb + continuation)
      for (int s = 0; s < nb; ++s) merged.emplace_back(finished[size_t(s)].score, s);
      for (size_t k = 0; k < cont.size(); ++k) {
        const bool just_finished = cont[k].hits_stop && int(k) < nb;
        double s = cont[k].score / std::pow(double(cur + 1), lp_exp);
        if (beams_full) s += kExcluded;
        if (!heuristic_unsatisfied) s += kExcluded;
        if (!just_finished) s += kExcluded;
        merged.emplace_back(s, nb + int(k));
      }
      std::stable_sort(merged.begin(), merged.end(), [](const auto& a, const auto& c) { return a.first > c.first; });
      std::vector<Hypothesis> next_finished;
      for (int s = 0; s < nb; ++s) {
        const auto [score, idx] = merged[size_t(s)];
        if (idx < nb) {
          next_finished.push_back(finished[size_t(idx)]);
          continue;
        }
        const Continuation& c = cont[size_t(idx - nb)];
        Hypothesis h = extend(running[size_t(c.beam)], c);
        h.score = score;
        h.finished = c.hits_stop && idx - nb < nb;
        h.finish = c.finish;
        next_finished.push_back(std::move(h));
      }
      finished = std::move(next_finished);

      // The next running beams: the best num_beams continuations, those that ended excluded.
      std::vector<std::pair<double, size_t>> order;
      for (size_t k = 0; k < cont.size(); ++k) order.emplace_back(cont[k].score + (cont[k].hits_stop ? kExcluded : 0.0), k);
      std::stable_sort(order.begin(), order.end(), [](const auto& a, const auto& c) { return a.first > c.first; });
      order.resize(std::min(order.size(), size_t(nb)));
      // Each child continues its parent's KV: the last child of a sequence takes it over, the
      // others fork it (no copy); sequences without children are released.
      std::vector<std::pair<SeqId, int>> kids;
      for (SeqId q : distinct_seqs()) kids.emplace_back(q, 0);
      auto kid_count = [&](SeqId q) -> int& {
        return std::find_if(kids.begin(), kids.end(), [&](const auto& e) { return e.first == q; })->second;
      };
      for (const auto& [score, k] : order) ++kid_count(running[size_t(cont[k].beam)].seq);
      for (const auto& [q, n] : kids)
        if (n == 0) lm.release(q);
      std::vector<Hypothesis> next_running;
      for (const auto& [score, k] : order) {
        const Continuation& c = cont[k];
        Hypothesis h = extend(running[size_t(c.beam)], c);
        h.score = score;
        const SeqId parent = running[size_t(c.beam)].seq;
        h.seq = --kid_count(parent) == 0 ? parent : lm.fork(parent);
        next_running.push_back(std::move(h));
      }
      running = std::move(next_running);
      n_generated += int64_t(running.size());
      ++cur;

      // transformers' stopping heuristics.
      all_finished = std::all_of(finished.begin(), finished.end(), [](const Hypothesis& h) { return h.finished; });
      const double best_len = opt.early_stopping == EarlyStopping::Never && lp_exp > 0 ? double(max_new) : double(cur);
      const double best_possible = running.empty() ? -INFINITY : running[0].score / std::pow(best_len, lp_exp);
      double worst = INFINITY;
      for (const Hypothesis& h : finished) worst = std::min(worst, h.score);
      bool improvable = false;
      for (const Hypothesis& h : finished) improvable = improvable || best_possible > (h.finished ? worst : kExcluded);
      heuristic_unsatisfied = heuristic_unsatisfied && improvable;
      const bool open_beam = !(all_finished && opt.early_stopping == EarlyStopping::True);
      if (!(heuristic_unsatisfied && open_beam && !all_hit) || running.empty()) break;

      std::vector<StepInput> inputs;
      for (const Hypothesis& h : running) inputs.push_back({.seq = h.seq, .tokens = {&h.tokens.back(), 1}});
      lm.step(inputs, logits);
    }
  } catch (...) {
    release_running();
    throw;
  }
  release_running();
  if (tokens_generated) *tokens_generated = n_generated;

  std::vector<Path> out;
  for (int i = 0; i < opt.num_return && i < nb; ++i) {
    const Hypothesis& h = finished[size_t(i)];
    if (!h.finished) continue;
    Path p;
    p.index = i;
    p.tokens = h.tokens;
    p.logprobs = h.logprobs;
    p.cumulative_logprob = h.sum_logprob;
    p.score = h.score;
    p.finish = h.finish;
    p.text = h.text.text();
    out.push_back(std::move(p));
  }
  return out;
}

}  // namespace ponder

// Monte Carlo tree search over reasoning steps (AlphaZero's PUCT search with rollouts, over text).
//
// The tree. A node is one reasoning step: the tokens up to and including the one that completes
// MctsOptions::step_delim (a newline by default), or up to the end of the completion (EOS, a stop
// string, max_tokens), which makes the node finished. The root is the prompt. A node that has not
// been expanded holds a sequence forked from its parent (the parent's KV blocks are shared, not
// copied) with every token but its last, `pending`, fed; expanding it feeds `pending` once (one
// logits row), forks that sequence K times and releases it, so only leaves and running rollouts
// hold sequences.
//
// A simulation, from the current root:
//  1. Selection: descend by PUCT, child c of parent p maximizing
//         Q(c) + c_puct * P(c) * sqrt(N(p)) / (1 + N(c)),
//     Q(c) = W(c) / N(c) (0 while N(c) = 0), P(c) the step's model probability normalized over
//     its siblings, N visits, W summed values; ties go to the earlier child (children are ordered
//     by prior, most probable first, ties by first token id). Stop at an unexpanded or a finished
//     node.
//  2. A finished node is re-scored: its known value is backed up again (no tokens spent).
//  3. Expansion: K = MctsOptions::expand child steps drawn independently (their first tokens from
//     the node's one logits row), growing in one batched step per token until each completes its
//     step; a step drawn twice becomes one child (the repeat's tokens still count), so a node whose
//     next step is near certain gets one child, not K.
//  4. Evaluation: each new unfinished child is rolled out to a complete answer at
//     rollout_temperature (all rollouts in one batched step per token, forked from the children,
//     released when done); a finished child is its own completion. A completion's value is the
//     request's verifier score, or without a verifier the agreement of its extracted answer with
//     every other completion's so far: (others with the same answer) / (others), 0 for no answer
//     (answers of one class, GenerateRequest::answer_key, count as the same).
//  5. Backup: each value is added along the path from its child to the current root (N += 1,
//     W += value), and every node remembers the best completion through it (value, then summed
//     log-prob).
// After MctsOptions::simulations simulations the search commits to the root's most visited child
// (ties: higher Q, then the earlier child), releases every other subtree's sequences, and goes on
// from that child, until the root is finished or the budget is spent. The answer: from the last
// root descend by visit count while the most visited child has at least two visits (a step seen by
// one rollout is no evidence), and return the best completion through the node reached.
//
// Budget: every generated token (expansion and rollout) counts against budget_tokens; a step or a
// rollout the budget cuts short is dropped (its tokens still count), so the budget is never
// exceeded. Determinism: every draw comes from Rng::derive(seed, k) for the k-th growth started.
#include <algorithm>
#include <cmath>
#include <set>

#include "core/error.h"
#include "decode/generate.h"
#include "decode/path_text.h"
#include "decode/paths.h"

namespace ponder {

namespace {

struct Node {
  int parent = -1;
  std::vector<int> children;      // most probable first
  SeqId seq = -1;                 // leaves that can still be expanded: KV of every token but `pending`
  int32_t pending = -1;           // the node's last token (the prompt's, for the first root)
  std::vector<int32_t> step;      // this step's tokens
  std::vector<float> step_logprobs;
  int depth = 0;                  // generated tokens from the prompt to the end of this step
  PathText text;                  // the completion's text up to the end of this step
  double step_logprob = 0;
  double prior = 0;
  int visits = 0;
  double value_sum = 0;
  bool expanded = false;
  bool finished = false;          // a complete answer (EOS, stop string, max_tokens)
  FinishReason finish = FinishReason::Length;
  double value = 0;               // finished nodes: the value of their completion
  int best = -1;                  // the best completion through this node
};

struct Completion {
  std::vector<int32_t> tokens;    // every generated token from the prompt on
  std::vector<float> logprobs;
  std::string text;
  FinishReason finish = FinishReason::Length;
  std::string answer;             // extracted and normalized (agreement)
  double logprob = 0;
  double value = 0;
};

// A sequence growing by sampled tokens: a child step (stops at the delimiter) or a rollout.
struct Growth {
  SeqId seq = -1;
  int32_t pending = -1;
  Sampler sampler;
  PathText text;
  int depth = 0;                  // generated tokens before this growth
  bool stop_at_delim = false;
  int owner = -1;                 // the node it grows from (rollouts) or under (children)
  std::vector<int32_t> tokens;
  std::vector<float> logprobs;
  std::string step_text;
  bool done = false, finished = false, cut = false;
  FinishReason finish = FinishReason::Length;
};

class Search {
 public:
  Search(LanguageModel& lm, const GenerateRequest& r, const MctsOptions& o)
      : lm_(lm), r_(r), o_(o), budget_left_(o.budget_tokens) {}

  GenerateResult run() {
    try {
      GenerateResult out;
      if (r_.stop.max_tokens > 0) search();
      out.paths.push_back(answer());
      out.tokens_generated = o_.budget_tokens - budget_left_;
      out.search = stats_;
      release_all();
      return out;
    } catch (...) {
      release_all();
      throw;
    }
  }

 private:
  // ---- sequences (every one this search holds is in owned_, released on any exit)
  SeqId fork(SeqId s) {
    const SeqId f = lm_.fork(s);
    owned_.insert(f);
    stats_.peak_sequences = std::max(stats_.peak_sequences, int(owned_.size()));
    return f;
  }
  void release(SeqId& s) {
    if (s < 0) return;
    lm_.release(s);
    owned_.erase(s);
    s = -1;
  }
  void release_all() {
    for (SeqId s : owned_) lm_.release(s);
    owned_.clear();
  }

  // The nodes from the first root's child down to n (empty for the first root).
  std::vector<int> chain(int n) const {
    std::vector<int> c;
    for (; n > 0; n = nodes_[size_t(n)].parent) c.push_back(n);
    std::reverse(c.begin(), c.end());
    return c;
  }

  // The prompt and the generated tokens up to the end of node n (what the samplers' penalties see).
  std::vector<int32_t> history(int n) const {
    std::vector<int32_t> h = r_.prompt;
    for (int c : chain(n)) h.insert(h.end(), nodes_[size_t(c)].step.begin(), nodes_[size_t(c)].step.end());
    return h;
  }

  Growth start_growth(int owner, SeqId seq, const SamplingOptions& sampling, bool stop_at_delim) {
    const Node& n = nodes_[size_t(owner)];
    Growth g{.seq = seq, .pending = n.pending, .sampler = Sampler(sampling, Rng::derive(o_.seed, draws_++)),
             .text = n.text, .depth = n.depth, .stop_at_delim = stop_at_delim, .owner = owner};
    g.sampler.set_prompt(history(owner));
    return g;
  }

  // Records a chosen token and decides whether the growth ends with it.
  void take(Growth& g, int32_t tok, std::span<const float> logits) {
    g.tokens.push_back(tok);
    g.logprobs.push_back(token_logprob(logits, tok));
    g.pending = tok;
    --budget_left_;
    auto end = [&](FinishReason f) { g.done = g.finished = true, g.finish = f; };
    if (lm_.is_eog(tok)) return end(FinishReason::Eos);
    const std::string piece = lm_.token_text(tok);
    if (g.text.append(piece)) return end(FinishReason::Stop);
    if (g.depth + int(g.tokens.size()) >= r_.stop.max_tokens) return end(FinishReason::Length);
    if (g.stop_at_delim) {
      g.step_text += piece;
      if (g.step_text.find(o_.step_delim) != std::string::npos) {
        g.done = true;
        return;
      }
    }
    if (budget_left_ == 0) g.done = g.cut = true;
  }

  // Every growth that is not done advances one token per batched step until all are done.
  void grow(std::vector<Growth>& gs) {
    std::vector<StepInput> inputs;
    std::vector<Growth*> active;
    for (;;) {
      inputs.clear();
      active.clear();
      for (Growth& g : gs)
        if (!g.done) {
          if (budget_left_ == 0) {
            g.done = g.cut = true;
            continue;
          }
          inputs.push_back({.seq = g.seq, .tokens = {&g.pending, 1}});
          active.push_back(&g);
        }
      if (inputs.empty()) return;
      lm_.step(inputs, logits_);
      const size_t V = size_t(lm_.n_vocab());
      for (size_t i = 0; i < active.size(); ++i) {
        Growth& g = *active[i];
        if (budget_left_ == 0) {
          g.done = g.cut = true;
          continue;
        }
        const std::span<const float> row(logits_.data() + i * V, V);
        take(g, g.sampler.sample(row), row);
      }
    }
  }

  // ---- the search
  void search() {
    Node root{.text = PathText(r_.stop)};
    root.seq = lm_.new_sequence();
    owned_.insert(root.seq);
    stats_.peak_sequences = 1;
    root.pending = r_.prompt.back();
    if (r_.prompt.size() > 1) {
      const StepInput in{.seq = root.seq, .tokens = std::span(r_.prompt).first(r_.prompt.size() - 1), .want_logits = false};
      lm_.step({&in, 1}, logits_);
    }
    nodes_.push_back(std::move(root));
    root_ = 0;
    while (!nodes_[size_t(root_)].finished && budget_left_ > 0) {
      for (int s = 0; s < o_.simulations && budget_left_ > 0; ++s)
        if (!simulate()) break;
      if (stats_.moves == 0) record_root();
      if (nodes_[size_t(root_)].children.empty() || budget_left_ == 0) break;
      const int next = most_visited(root_);
      for (int c : nodes_[size_t(root_)].children)
        if (c != next) release_subtree(c);
      root_ = next;
      ++stats_.moves;
    }
    if (stats_.moves == 0) record_root();
  }

  void record_root() {
    stats_.root_visits.clear();
    stats_.root_priors.clear();
    for (int c : nodes_[0].children) {
      stats_.root_visits.push_back(nodes_[size_t(c)].visits);
      stats_.root_priors.push_back(nodes_[size_t(c)].prior);
    }
  }

  double puct(int c, int parent) const {
    const Node& n = nodes_[size_t(c)];
    const double q = n.visits > 0 ? n.value_sum / n.visits : 0.0;
    return q + double(o_.c_puct) * n.prior * std::sqrt(double(nodes_[size_t(parent)].visits)) / (1.0 + n.visits);
  }

  int most_visited(int n) const {
    int best = -1;
    for (int c : nodes_[size_t(n)].children) {
      if (best < 0) {
        best = c;
        continue;
      }
      const Node &a = nodes_[size_t(c)], &b = nodes_[size_t(best)];
      const double qa = a.visits ? a.value_sum / a.visits : 0, qb = b.visits ? b.value_sum / b.visits : 0;
      if (a.visits > b.visits || (a.visits == b.visits && qa > qb)) best = c;
    }
    return best;
  }

  // False when nothing more can be done from this root (a dead end, or no budget).
  bool simulate() {
    int n = root_;
    while (nodes_[size_t(n)].expanded && !nodes_[size_t(n)].finished) {
      const auto& kids = nodes_[size_t(n)].children;
      if (kids.empty()) return false;  // every child step was cut by the budget
      int best = kids[0];
      double best_score = puct(best, n);
      for (size_t i = 1; i < kids.size(); ++i) {
        const double s = puct(kids[i], n);
        if (s > best_score) best = kids[i], best_score = s;
      }
      n = best;
    }
    ++stats_.simulations;
    if (nodes_[size_t(n)].finished) {
      backup(n, nodes_[size_t(n)].value, nodes_[size_t(n)].best);
      return true;
    }
    const std::vector<int> kids = expand(n);
    evaluate(kids);
    return true;
  }

  // Expands leaf n into up to K children; returns the new children.
  std::vector<int> expand(int n) {
    std::vector<float> row;
    {
      const StepInput in{.seq = nodes_[size_t(n)].seq, .tokens = {&nodes_[size_t(n)].pending, 1}};
      lm_.step({&in, 1}, row);
    }
    std::vector<Growth> kids;
    const int64_t k_max = std::min<int64_t>(o_.expand, budget_left_);
    for (int64_t k = 0; k < k_max; ++k) {
      kids.push_back(start_growth(n, fork(nodes_[size_t(n)].seq), o_.sampling, true));
      Growth& g = kids.back();
      take(g, g.sampler.sample(row), row);
    }
    release(nodes_[size_t(n)].seq);
    nodes_[size_t(n)].expanded = true;
    grow(kids);

    std::vector<int> made;
    double max_lp = -INFINITY;
    std::vector<bool> repeat(kids.size(), false);
    for (size_t k = 0; k < kids.size(); ++k)
      for (size_t e = 0; e < k && !repeat[k]; ++e) repeat[k] = !kids[e].cut && kids[e].tokens == kids[k].tokens;
    for (size_t k = 0; k < kids.size(); ++k) {
      Growth& g = kids[k];
      if (g.cut || repeat[k]) {  // an incomplete step, or the same step as an earlier child: dropped
        release(g.seq);
        continue;
      }
      const int depth = nodes_[size_t(n)].depth + int(g.tokens.size());
      Node c{.parent = n, .seq = g.seq, .pending = g.pending, .step = std::move(g.tokens),
             .step_logprobs = std::move(g.logprobs), .depth = depth, .text = g.text};
      for (float lp : c.step_logprobs) c.step_logprob += lp;
      c.finished = g.finished;
      c.finish = g.finish;
      if (c.finished) release(c.seq);
      max_lp = std::max(max_lp, c.step_logprob);
      made.push_back(int(nodes_.size()));
      nodes_.push_back(std::move(c));
      ++stats_.nodes;
    }
    double z = 0;
    for (int c : made) z += std::exp(nodes_[size_t(c)].step_logprob - max_lp);
    for (int c : made) nodes_[size_t(c)].prior = std::exp(nodes_[size_t(c)].step_logprob - max_lp) / z;
    std::vector<int> order = made;
    std::stable_sort(order.begin(), order.end(), [&](int a, int b) {
      const Node &x = nodes_[size_t(a)], &y = nodes_[size_t(b)];
      return x.prior != y.prior ? x.prior > y.prior : x.step.front() < y.step.front();
    });
    nodes_[size_t(n)].children = order;
    return order;
  }

  // Rolls out the new children, scores every completion and backs the values up.
  void evaluate(const std::vector<int>& kids) {
    SamplingOptions rollout = o_.sampling;
    rollout.temperature = o_.rollout_temperature;
    std::vector<Growth> rolls;
    for (int c : kids)
      if (!nodes_[size_t(c)].finished) rolls.push_back(start_growth(c, fork(nodes_[size_t(c)].seq), rollout, false));
    grow(rolls);
    const size_t first = completions_.size();
    std::vector<int> scored;  // the child each new completion backs up from
    for (int c : kids)
      if (nodes_[size_t(c)].finished) {
        const Node& n = nodes_[size_t(c)];
        completions_.push_back(complete(c, {}, {}, n.text.text(), n.finish));
        scored.push_back(c);
      }
    for (Growth& g : rolls) {
      release(g.seq);
      if (!g.finished) continue;  // cut by the budget: no value
      completions_.push_back(complete(g.owner, g.tokens, g.logprobs, g.text.text(), g.finish));
      scored.push_back(g.owner);
    }
    for (size_t i = first; i < completions_.size(); ++i) {
      completions_[i].value = value(i);
      stats_.best_value = i == 0 ? completions_[i].value : std::max(stats_.best_value, completions_[i].value);
    }
    for (size_t i = first; i < completions_.size(); ++i) {
      const int c = scored[i - first];
      if (nodes_[size_t(c)].finished) nodes_[size_t(c)].value = completions_[i].value;
      backup(c, completions_[i].value, int(i));
    }
    stats_.rollouts += int64_t(completions_.size() - first);
  }

  Completion complete(int node, const std::vector<int32_t>& tail, const std::vector<float>& tail_lp, std::string text,
                      FinishReason finish) const {
    Completion c{.text = std::move(text), .finish = finish};
    for (int i : chain(node)) {
      const Node& n = nodes_[size_t(i)];
      c.tokens.insert(c.tokens.end(), n.step.begin(), n.step.end());
      c.logprobs.insert(c.logprobs.end(), n.step_logprobs.begin(), n.step_logprobs.end());
    }
    c.tokens.insert(c.tokens.end(), tail.begin(), tail.end());
    c.logprobs.insert(c.logprobs.end(), tail_lp.begin(), tail_lp.end());
    for (float lp : c.logprobs) c.logprob += lp;
    Path p{.text = c.text};
    finish_path(p);
    c.answer = p.extracted_answer.empty() ? "" : answer_class(r_.answer_key, p.extracted_answer);
    return c;
  }

  double value(size_t i) const {
    const Completion& c = completions_[i];
    if (r_.verifier) return verifier_score(r_.verifier, c.text);
    if (c.answer.empty() || completions_.size() < 2) return 0;
    size_t same = 0;
    for (size_t j = 0; j < completions_.size(); ++j)
      if (j != i && completions_[j].answer == c.answer) ++same;
    return double(same) / double(completions_.size() - 1);
  }

  void backup(int from, double v, int completion) {
    for (int n = from;; n = nodes_[size_t(n)].parent) {
      Node& node = nodes_[size_t(n)];
      node.visits += 1;
      node.value_sum += v;
      if (completion >= 0) {
        const Completion& c = completions_[size_t(completion)];
        const Completion* b = node.best >= 0 ? &completions_[size_t(node.best)] : nullptr;
        if (!b || c.value > b->value || (c.value == b->value && c.logprob > b->logprob)) node.best = completion;
      }
      if (n == root_) break;
    }
  }

  void release_subtree(int n) {
    release(nodes_[size_t(n)].seq);
    for (int c : nodes_[size_t(n)].children) release_subtree(c);
  }

  // The chosen completion: descend by visits from the last root, then the best completion there.
  Path answer() const {
    Path p;
    if (nodes_.empty()) return p;
    int n = root_;
    for (;;) {
      const Node& node = nodes_[size_t(n)];
      if (node.children.empty()) break;
      const int c = most_visited(n);
      if (nodes_[size_t(c)].visits < 2) break;  // one rollout is no evidence for a step
      n = c;
    }
    int best = -1;
    for (int a = n; a >= 0 && best < 0; a = nodes_[size_t(a)].parent) best = nodes_[size_t(a)].best;
    // Nothing completed: the steps taken so far, cut by the budget (finish "length", score 0).
    const Completion c = best >= 0 ? completions_[size_t(best)]
                                   : complete(n, {}, {}, nodes_[size_t(n)].text.text(), FinishReason::Length);
    p.tokens = c.tokens, p.logprobs = c.logprobs, p.text = c.text, p.cumulative_logprob = c.logprob;
    p.finish = c.finish;
    p.score = c.value;
    return p;
  }

  LanguageModel& lm_;
  const GenerateRequest& r_;
  const MctsOptions& o_;
  int64_t budget_left_;
  uint64_t draws_ = 0;
  std::vector<Node> nodes_;
  std::vector<Completion> completions_;
  int root_ = 0;
  std::set<SeqId> owned_;
  std::vector<float> logits_;
  SearchStats stats_;
};

}  // namespace

GenerateResult generate_mcts(LanguageModel& lm, const GenerateRequest& r, const MctsOptions& o) {
  return Search(lm, r, o).run();
}

}  // namespace ponder

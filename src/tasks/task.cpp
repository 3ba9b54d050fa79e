// Built-in tasks: random expression trees for arith and countdown, prompt templates, hash-assigned
// splits (rules in task.h).
#include "tasks/task.h"

#include <algorithm>
#include <stdexcept>

#include "core/error.h"
#include "core/rng.h"

namespace ponder {
namespace {

constexpr std::string_view kR1ZeroPreamble =
    "A conversation between User and Assistant. The user asks a question, and the Assistant solves it. "
    "The assistant first thinks about the reasoning process in the mind and then provides the user with the "
    "answer. The reasoning process and answer are enclosed within <think> </think> and <answer> </answer> "
    "tags, respectively, i.e., <think> reasoning process here </think> <answer> answer here </answer>.";
constexpr uint64_t kTestShare = 8;          // one problem in 8 belongs to the test split
constexpr int kMaxDraws = 1'000'000;        // far beyond what any task needs; reaching it is a bug

// ---- expression trees ----

struct Node {
  int64_t value = 0;  // a leaf's number; an operation's value once evaluated
  char op = 0;        // 0 for a leaf, else one of + - * /
  int left = -1, right = -1;
};

struct Expr {
  std::vector<Node> nodes;
  int root = -1;
};

int precedence(char op) { return op == '+' || op == '-' ? 1 : 2; }

// A random tree over leaves[lo, hi) in that order; a left chain ((a o b) o c) o d when left_chain.
int build_tree(Expr& e, const std::vector<int>& leaves, size_t lo, size_t hi, std::string_view ops, bool left_chain,
               Rng& rng) {
  if (hi - lo == 1) {
    e.nodes.push_back({.value = leaves[lo]});
    return int(e.nodes.size()) - 1;
  }
  const size_t split = left_chain ? hi - 1 : lo + 1 + size_t(rng.below(hi - lo - 1));
  const int left = build_tree(e, leaves, lo, split, ops, left_chain, rng);
  const int right = build_tree(e, leaves, split, hi, ops, left_chain, rng);
  e.nodes.push_back({.op = ops[rng.below(ops.size())], .left = left, .right = right});
  return int(e.nodes.size()) - 1;
}

// Evaluates node i bottom-up (left subtree, right subtree, then the node), appending one step
// "a op b=c" per operation to `steps`. False when a division is not exact or a value leaves [lo, hi].
bool evaluate_tree(Expr& e, int i, int64_t lo, int64_t hi, std::string& steps) {
  Node& n = e.nodes[i];
  if (!n.op) return true;
  if (!evaluate_tree(e, n.left, lo, hi, steps) || !evaluate_tree(e, n.right, lo, hi, steps)) return false;
  const int64_t a = e.nodes[n.left].value, b = e.nodes[n.right].value;
  switch (n.op) {
    case '+': n.value = a + b; break;
    case '-': n.value = a - b; break;
    case '*': n.value = a * b; break;
    case '/':
      if (b == 0 || a % b != 0) return false;
      n.value = a / b;
      break;
  }
  if (n.value < lo || n.value > hi) return false;
  if (!steps.empty()) steps += ' ';
  steps += std::to_string(a);
  steps += n.op;
  steps += b < 0 ? std::string(1, '(').append(std::to_string(b)).append(1, ')') : std::to_string(b);
  steps += '=';
  steps += std::to_string(n.value);
  return true;
}

// The expression with the fewest parentheses that parses back (left-associative, * / before + -)
// into exactly this tree: a child is parenthesized when its operator binds looser than its
// parent's, or equally loosely on the right ("a-(b+c)", "a*(b*c)").
std::string print_tree(const Expr& e, int i) {
  const Node& n = e.nodes[i];
  if (!n.op) return std::to_string(n.value);
  auto side = [&](int child, bool right) {
    const Node& c = e.nodes[child];
    std::string s = print_tree(e, child);
    const bool paren = c.op && (precedence(c.op) < precedence(n.op) || (right && precedence(c.op) == precedence(n.op)));
    return paren ? "(" + s + ")" : s;
  };
  return side(n.left, false) + n.op + side(n.right, true);
}

bool has_op(const Expr& e, std::string_view ops) {
  return std::any_of(e.nodes.begin(), e.nodes.end(), [&](const Node& n) { return n.op && ops.find(n.op) != ops.npos; });
}

// ---- problems ----

struct Problem {
  Expr expr;
  std::string expression;    // print_tree of the root
  std::string steps;         // the evaluation trace
  std::vector<int> numbers;  // countdown: in prompt order
  std::string key;           // canonical form, decides the split
};

int draw_int(Rng& rng, int lo, int hi) { return lo + int(rng.below(uint64_t(hi - lo + 1))); }

Problem draw_arith(int difficulty, Rng& rng) {
  const int n_operands = difficulty == 3 ? 4 : 3;
  const std::string_view ops = difficulty <= 1 ? "+-" : difficulty == 2 ? "+-*" : "+-*/";
  const int max_operand = difficulty == 0 ? 9 : 99;
  for (int attempt = 0; attempt < kMaxDraws; ++attempt) {
    std::vector<int> leaves(n_operands);
    for (int& v : leaves) v = draw_int(rng, 1, max_operand);
    Problem p;
    p.expr.root = build_tree(p.expr, leaves, 0, leaves.size(), ops, difficulty <= 1, rng);
    if (difficulty >= 2 && !has_op(p.expr, "*/")) continue;
    if (!evaluate_tree(p.expr, p.expr.root, -999, 999, p.steps)) continue;
    p.expression = print_tree(p.expr, p.expr.root);
    p.key = "arith:" + p.expression;
    return p;
  }
  throw std::logic_error("draw_arith: no valid problem drawn");
}

Problem draw_countdown(int difficulty, Rng& rng) {
  const int n_numbers = difficulty == 3 ? 4 : 3;
  const int max_number = difficulty == 1 ? 20 : 99;
  const std::string_view ops = difficulty == 1 ? "+-*" : "+-*/";
  for (int attempt = 0; attempt < kMaxDraws; ++attempt) {
    Problem p;
    p.numbers.resize(n_numbers);
    for (int& v : p.numbers) v = draw_int(rng, 1, max_number);
    std::vector<int> leaves = p.numbers;  // the expression uses them in a random order
    for (size_t i = leaves.size() - 1; i > 0; --i) std::swap(leaves[i], leaves[rng.below(i + 1)]);
    p.expr.root = build_tree(p.expr, leaves, 0, leaves.size(), ops, false, rng);
    if (!evaluate_tree(p.expr, p.expr.root, 1, 999, p.steps)) continue;
    p.expression = print_tree(p.expr, p.expr.root);
    std::vector<int> sorted = p.numbers;
    std::sort(sorted.begin(), sorted.end());
    p.key = "countdown:";
    for (int v : sorted) p.key += std::to_string(v) + ",";
    p.key += "->" + std::to_string(p.expr.nodes[p.expr.root].value);
    return p;
  }
  throw std::logic_error("draw_countdown: no valid problem drawn");
}

std::string with_template(PromptTemplate t, std::string_view compact, std::string_view question) {
  if (t == PromptTemplate::Compact) return "Q: " + std::string(compact) + " A: <think>";
  return std::string(kR1ZeroPreamble) + " User: " + std::string(question) + " Assistant: <think>";
}

TaskItem arith_item(const Problem& p, PromptTemplate t) {
  TaskItem item;
  item.question = "What is " + p.expression + "?";
  item.prompt = with_template(t, p.expression + "=", item.question);
  item.answer = std::to_string(p.expr.nodes[p.expr.root].value);
  item.reasoning = p.steps;
  return item;
}

TaskItem countdown_item(const Problem& p, PromptTemplate t) {
  TaskItem item;
  item.numbers = p.numbers;
  item.target = p.expr.nodes[p.expr.root].value;
  item.check = AnswerCheck::Countdown;
  std::string spaced, listed;
  for (size_t i = 0; i < p.numbers.size(); ++i) {
    spaced += ' ';
    spaced += std::to_string(p.numbers[i]);
    if (i) listed += ", ";
    listed += std::to_string(p.numbers[i]);
  }
  const std::string target = std::to_string(item.target);
  item.question = "Using the numbers [" + listed + "], create an equation that equals " + target +
                  ". You can use basic arithmetic operations (+, -, *, /) and each number exactly once.";
  item.prompt = with_template(t, "make " + target + " with" + spaced, item.question);
  item.answer = p.expression;
  item.reasoning = p.steps;
  return item;
}

// The closed set of tasks.
struct TaskDef {
  std::string_view name;
  Problem (*draw)(int difficulty, Rng& rng);
  TaskItem (*make_item)(const Problem& p, PromptTemplate t);
};

constexpr TaskDef kTasks[] = {
    {"arith", draw_arith, arith_item},
    {"countdown", draw_countdown, countdown_item},
};

const TaskDef& find_task(std::string_view name) {
  for (const TaskDef& t : kTasks)
    if (t.name == name) return t;
  std::string known;
  for (const TaskDef& t : kTasks) known += std::string(known.empty() ? "" : ", ") + std::string(t.name);
  throw InvalidArgument("task name '" + std::string(name) + "': expected one of " + known);
}

uint64_t fnv1a(std::string_view s) {
  uint64_t h = 0xcbf29ce484222325ull;
  for (char c : s) h = (h ^ uint8_t(c)) * 0x100000001b3ull;
  return h;
}

uint64_t mix(uint64_t a, uint64_t b) {
  uint64_t state = a ^ (b * 0x9e3779b97f4a7c15ull);
  return splitmix64(state);
}

// The seed of the item streams of (name, split, seed, difficulty); item i draws from derive(., i).
uint64_t stream_seed(const TaskOptions& o) {
  return mix(mix(mix(o.seed, fnv1a(o.name)), uint64_t(task_difficulty(o))), o.split == Split::Test ? 1 : 0);
}

}  // namespace

const std::vector<std::string_view>& task_names() {
  static const std::vector<std::string_view> names = [] {
    std::vector<std::string_view> v;
    for (const TaskDef& t : kTasks) v.push_back(t.name);
    return v;
  }();
  return names;
}

int default_difficulty(std::string_view task) {
  find_task(task);
  return task == "arith" ? 0 : 1;
}

int task_difficulty(const TaskOptions& options) {
  return options.difficulty == -1 ? default_difficulty(options.name) : options.difficulty;
}

void validate_task_options(const TaskOptions& options) {
  find_task(options.name);
  const int lowest = options.name == "arith" ? 0 : 1;
  if (options.difficulty == -1) return;  // the task's default
  if (options.difficulty < lowest || options.difficulty > 3)
    throw InvalidArgument("task difficulty: expected " + std::to_string(lowest) + " to 3 for " + options.name + ", got " +
                          std::to_string(options.difficulty));
}

Split split_of_problem(std::string_view canonical) {
  uint64_t h = fnv1a(canonical);
  return splitmix64(h) % kTestShare == 0 ? Split::Test : Split::Train;
}

TaskItem generate_item(const TaskOptions& options, int64_t index) {
  validate_task_options(options);
  if (index < 0) throw InvalidArgument("task item index must be >= 0, got " + std::to_string(index));
  const TaskDef& task = find_task(options.name);
  Rng rng = Rng::derive(stream_seed(options), uint64_t(index));
  for (int draw = 0; draw < kMaxDraws; ++draw) {
    Problem p = task.draw(task_difficulty(options), rng);
    if (split_of_problem(p.key) == options.split) return task.make_item(p, options.prompt_template);
  }
  throw std::logic_error("generate_item: no problem of the requested split drawn");
}

std::vector<TaskItem> generate_items(const TaskOptions& options, int count, int64_t first_index) {
  validate_task_options(options);
  if (count < 0) throw InvalidArgument("task item count must be >= 0, got " + std::to_string(count));
  std::vector<TaskItem> items;
  items.reserve(size_t(count));
  for (int i = 0; i < count; ++i) items.push_back(generate_item(options, first_index + i));
  return items;
}

std::string sft_completion(const TaskItem& item) {
  std::string s = item.reasoning.empty() ? "" : " " + item.reasoning;
  return s + " </think> <answer> " + item.answer + " </answer>";
}

Split parse_split(std::string_view text) {
  if (text == "train") return Split::Train;
  if (text == "test") return Split::Test;
  throw InvalidArgument("split '" + std::string(text) + "': expected train or test");
}

PromptTemplate parse_prompt_template(std::string_view text) {
  if (text == "compact") return PromptTemplate::Compact;
  if (text == "r1zero") return PromptTemplate::R1Zero;
  throw InvalidArgument("prompt template '" + std::string(text) + "': expected compact or r1zero");
}

}  // namespace ponder

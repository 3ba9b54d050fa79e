// Built-in tasks (rules in tasks/task.h): determinism, disjoint splits, answers checked by an
// evaluator written here, lengths, the `ponder task` command.
#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>
#include <optional>
#include <set>
#include <sstream>
#include <sys/wait.h>

#include "core/error.h"
#include "tasks/reward.h"
#include "tasks/task.h"
#include "support/temp_path.h"

using ponder::testing::temp_path;

namespace ponder {
namespace {

// A second, integer-only evaluator for + - * / and parentheses (no unary operators; division must
// be exact), independent of the task code. Collects the literals in `numbers`.
struct IntEval {
  std::string_view s;
  size_t i = 0;
  std::vector<int> numbers;

  std::optional<int64_t> expr() {
    auto v = term();
    while (v && i < s.size() && (s[i] == '+' || s[i] == '-')) {
      const char op = s[i++];
      auto r = term();
      if (!r) return std::nullopt;
      v = op == '+' ? *v + *r : *v - *r;
    }
    return v;
  }
  std::optional<int64_t> term() {
    auto v = atom();
    while (v && i < s.size() && (s[i] == '*' || s[i] == '/')) {
      const char op = s[i++];
      auto r = atom();
      if (!r || (op == '/' && (*r == 0 || *v % *r != 0))) return std::nullopt;
      v = op == '*' ? *v * *r : *v / *r;
    }
    return v;
  }
  std::optional<int64_t> atom() {
    if (i < s.size() && s[i] == '(') {
      ++i;
      auto v = expr();
      if (!v || i >= s.size() || s[i] != ')') return std::nullopt;
      ++i;
      return v;
    }
    if (i >= s.size() || !isdigit(uint8_t(s[i]))) return std::nullopt;
    int64_t v = 0;
    while (i < s.size() && isdigit(uint8_t(s[i]))) v = v * 10 + (s[i++] - '0');
    numbers.push_back(int(v));
    return v;
  }
};

std::optional<int64_t> eval_int(std::string_view s, std::vector<int>* numbers = nullptr) {
  IntEval e{s};
  auto v = e.expr();
  if (!v || e.i != s.size()) return std::nullopt;
  if (numbers) *numbers = e.numbers;
  return v;
}

// The arith expression between "Q: " and "= A: <think>" of a compact prompt.
std::string arith_expression(const TaskItem& item) {
  const std::string& p = item.prompt;
  EXPECT_TRUE(p.starts_with("Q: ") && p.ends_with("= A: <think>")) << p;
  return p.substr(3, p.size() - 3 - std::string("= A: <think>").size());
}

std::string countdown_key(const TaskItem& item) {
  std::vector<int> n = item.numbers;
  std::sort(n.begin(), n.end());
  std::string key;
  for (int v : n) key += std::to_string(v) + ",";
  return key + "->" + std::to_string(item.target);
}

std::string problem_key(const std::string& task, const TaskItem& item) {
  return task == "arith" ? arith_expression(item) : countdown_key(item);
}

// Each step of a trace "a op b=c" is right, and the last value is the answer.
void expect_trace_right(const TaskItem& item) {
  std::istringstream steps(item.reasoning);
  std::string step, last;
  int n_steps = 0;
  while (steps >> step) {
    const size_t eq = step.find('=');
    ASSERT_NE(eq, std::string::npos) << item.reasoning;
    std::string lhs = step.substr(0, eq);
    // "-2+46" and "20-(-5)": fold the signs into the independent evaluator's grammar.
    if (lhs[0] == '-') lhs.insert(lhs.begin(), '0');
    if (size_t neg = lhs.find("(-"); neg != std::string::npos) lhs.insert(neg + 1, 1, '0');
    const std::optional<int64_t> v = eval_int(lhs);
    ASSERT_TRUE(v.has_value()) << step;
    EXPECT_EQ(std::to_string(*v), step.substr(eq + 1)) << step;
    last = step.substr(eq + 1);
    ++n_steps;
  }
  if (item.check == AnswerCheck::Countdown) {
    EXPECT_EQ(last, std::to_string(item.target)) << item.reasoning;
    EXPECT_EQ(n_steps, int(item.numbers.size()) - 1) << item.reasoning;
  } else {
    EXPECT_EQ(last, item.answer) << item.reasoning;
  }
}

TaskOptions options(const std::string& name, int difficulty, Split split = Split::Train, uint64_t seed = 0) {
  TaskOptions o;
  o.name = name;
  o.difficulty = difficulty;
  o.split = split;
  o.seed = seed;
  return o;
}

bool same_item(const TaskItem& a, const TaskItem& b) {
  return a.prompt == b.prompt && a.answer == b.answer && a.reasoning == b.reasoning && a.numbers == b.numbers &&
         a.target == b.target && a.check == b.check;
}

TEST(TaskGenerate, Deterministic) {
  for (const std::string name : {"arith", "countdown"}) {
    for (int d = 1; d <= 3; ++d) {
      SCOPED_TRACE(name + " difficulty " + std::to_string(d));
      const TaskOptions o = options(name, d, Split::Train, 7);
      const auto a = generate_items(o, 50), b = generate_items(o, 50);
      const auto head = generate_items(o, 10), tail = generate_items(o, 5, 45);
      for (int i = 0; i < 50; ++i) ASSERT_TRUE(same_item(a[i], b[i])) << i;
      for (int i = 0; i < 10; ++i) EXPECT_TRUE(same_item(a[i], head[i])) << i;  // independent of the count
      for (int i = 0; i < 5; ++i) EXPECT_TRUE(same_item(a[45 + i], tail[i])) << i;
      EXPECT_TRUE(same_item(a[17], generate_item(o, 17)));
      // Another seed, another stream; the template changes the prompt only.
      const auto other = generate_items(options(name, d, Split::Train, 8), 50);
      int n_same = 0;
      for (int i = 0; i < 50; ++i) n_same += a[i].prompt == other[i].prompt;
      EXPECT_LT(n_same, 5);
      TaskOptions r1 = o;
      r1.prompt_template = PromptTemplate::R1Zero;
      const TaskItem z = generate_item(r1, 3);
      EXPECT_EQ(z.answer, a[3].answer);
      EXPECT_EQ(z.reasoning, a[3].reasoning);
      EXPECT_TRUE(z.prompt.starts_with("A conversation between User and Assistant.")) << z.prompt;
      EXPECT_TRUE(z.prompt.ends_with(" Assistant: <think>")) << z.prompt;
    }
  }
  // Golden items: the streams do not change across platforms or refactors by accident.
  EXPECT_EQ(generate_item(options("arith", 1), 0).prompt, "Q: 6+26+41= A: <think>");
  EXPECT_EQ(generate_item(options("countdown", 2), 0).answer, "97+75*9");
}

TEST(TaskGenerate, SplitsAreDisjoint) {
  for (const std::string name : {"arith", "countdown"}) {
    for (int d = 1; d <= 3; ++d) {
      SCOPED_TRACE(name + " difficulty " + std::to_string(d));
      std::set<std::string> train;
      for (const TaskItem& item : generate_items(options(name, d, Split::Train, 1), 20000))
        train.insert(problem_key(name, item));
      std::set<std::string> test;
      int n_overlap = 0;
      for (uint64_t seed : {1, 2}) {  // the same seed and another one
        for (const TaskItem& item : generate_items(options(name, d, Split::Test, seed), 5000)) {
          const std::string key = problem_key(name, item);
          n_overlap += train.count(key);
          test.insert(key);
        }
      }
      EXPECT_EQ(n_overlap, 0);
      // Both splits are varied: mostly distinct problems (countdown at difficulty 1 has few).
      EXPECT_GT(train.size(), name == "countdown" && d == 1 ? 5000u : 15000u);
      EXPECT_GT(test.size(), name == "countdown" && d == 1 ? 1000u : 5000u);
    }
  }
}

TEST(TaskGenerate, ArithAnswersAreRight) {
  for (int d = 1; d <= 3; ++d) {
    SCOPED_TRACE("difficulty " + std::to_string(d));
    int n_mul_div = 0, n_paren = 0;
    for (Split split : {Split::Train, Split::Test}) {
      for (const TaskItem& item : generate_items(options("arith", d, split, 3), 2000)) {
        const std::string expr = arith_expression(item);
        std::vector<int> operands;
        const std::optional<int64_t> v = eval_int(expr, &operands);
        ASSERT_TRUE(v.has_value()) << expr;
        ASSERT_EQ(item.answer, std::to_string(*v)) << expr;
        EXPECT_LT(std::abs(*v), 1000) << expr;
        EXPECT_EQ(operands.size(), d == 3 ? 4u : 3u) << expr;
        for (int x : operands) EXPECT_TRUE(x >= 1 && x <= 99) << expr;
        if (d == 1) {
          EXPECT_EQ(expr.find_first_of("*/()"), std::string::npos) << expr;
        }
        if (d >= 2) {
          EXPECT_NE(expr.find_first_of("*/"), std::string::npos) << expr;
        }
        if (d == 2) {
          EXPECT_EQ(expr.find('/'), std::string::npos) << expr;
        }
        n_mul_div += expr.find_first_of("*/") != std::string::npos;
        n_paren += expr.find('(') != std::string::npos;
        EXPECT_EQ(item.check, AnswerCheck::Match);
        EXPECT_EQ(size_t(std::count(item.reasoning.begin(), item.reasoning.end(), '=')), operands.size() - 1);
        expect_trace_right(item);
      }
    }
    if (d >= 2) {
      EXPECT_GT(n_paren, 400);  // parentheses are common
    }
  }
}

TEST(TaskGenerate, CountdownTargetsAreReachable) {
  for (int d = 1; d <= 3; ++d) {
    SCOPED_TRACE("difficulty " + std::to_string(d));
    for (Split split : {Split::Train, Split::Test}) {
      for (const TaskItem& item : generate_items(options("countdown", d, split, 4), 2000)) {
        EXPECT_EQ(item.check, AnswerCheck::Countdown);
        ASSERT_EQ(item.numbers.size(), d == 3 ? 4u : 3u);
        for (int x : item.numbers) EXPECT_TRUE(x >= 1 && x <= (d == 1 ? 20 : 99)) << x;
        EXPECT_TRUE(item.target >= 1 && item.target <= 999) << item.target;
        // The verifier accepts the reference, and so does the independent evaluator.
        EXPECT_TRUE(check_countdown(item.answer, item.numbers, item.target)) << item.answer;
        std::vector<int> used, given = item.numbers;
        const std::optional<int64_t> v = eval_int(item.answer, &used);
        ASSERT_TRUE(v.has_value()) << item.answer;
        EXPECT_EQ(*v, item.target) << item.answer;
        std::sort(used.begin(), used.end());
        std::sort(given.begin(), given.end());
        EXPECT_EQ(used, given) << item.answer;
        if (d == 1) {
          EXPECT_EQ(item.answer.find('/'), std::string::npos) << item.answer;
        }
        expect_trace_right(item);
        // The prompt shows the numbers and the target.
        std::string shown = "make " + std::to_string(item.target) + " with";
        for (int x : item.numbers) shown.append(" ").append(std::to_string(x));
        EXPECT_EQ(item.prompt, "Q: " + shown + " A: <think>");
      }
    }
  }
}

TEST(TaskGenerate, LengthsAndCharacters) {
  for (const std::string name : {"arith", "countdown"}) {
    for (int d = 1; d <= 3; ++d) {
      SCOPED_TRACE(name + " difficulty " + std::to_string(d));
      size_t max_total = 0;
      for (const TaskItem& item : generate_items(options(name, d, Split::Train, 5), 3000)) {
        const std::string completion = sft_completion(item);
        max_total = std::max(max_total, item.prompt.size() + completion.size());
        for (char c : item.prompt + completion) ASSERT_TRUE(c >= 0x20 && c <= 0x7e) << int(c);
        EXPECT_TRUE(item.prompt.ends_with("<think>"));
        EXPECT_EQ(completion, " " + item.reasoning + " </think> <answer> " + item.answer + " </answer>");
        // The reference completion earns every reward.
        EXPECT_EQ(format_reward(completion), 1.0f) << completion;
        EXPECT_EQ(accuracy_reward(completion, item), 1.0f) << completion;
        EXPECT_EQ(tinyzero_reward(completion, item), 1.0f) << completion;
      }
      EXPECT_LE(max_total, 120u);  // at most 115 measured (countdown, difficulty 3)
    }
  }
}

TEST(TaskGenerate, SftCompletionFormat) {
  TaskItem item{.prompt = "Q: 12+7-3= A: <think>", .answer = "16", .reasoning = "12+7=19 19-3=16"};
  EXPECT_EQ(sft_completion(item), " 12+7=19 19-3=16 </think> <answer> 16 </answer>");
  item.reasoning.clear();
  EXPECT_EQ(sft_completion(item), " </think> <answer> 16 </answer>");
}

// Difficulty 0 (the demo's level): three operands 1..9, + and - left to right, the answer right.
TEST(TaskArith, DifficultyZeroIsSingleDigits) {
  for (const TaskItem& it : generate_items(options("arith", 0), 500)) {
    int a, b, c;
    char op1, op2;
    ASSERT_EQ(std::sscanf(it.prompt.c_str(), "Q: %d%c%d%c%d= A:", &a, &op1, &b, &op2, &c), 5) << it.prompt;
    for (int v : {a, b, c}) EXPECT_TRUE(v >= 1 && v <= 9) << it.prompt;
    const int ab = op1 == '+' ? a + b : a - b;
    EXPECT_EQ(it.answer, std::to_string(op2 == '+' ? ab + c : ab - c)) << it.prompt;
  }
}

TEST(TaskOptionsCheck, BadOptions) {
  EXPECT_THROW(generate_items(options("sudoku", 1), 1), InvalidArgument);
  EXPECT_THROW(generate_items(options("arith", -2), 1), InvalidArgument);  // -1: the task's default
  EXPECT_THROW(generate_items(options("countdown", 0), 1), InvalidArgument);
  EXPECT_THROW(generate_items(options("arith", 4), 1), InvalidArgument);
  EXPECT_THROW(generate_items(options("arith", 1), -1), InvalidArgument);
  EXPECT_TRUE(generate_items(options("arith", 1), 0).empty());
  EXPECT_EQ(parse_split("test"), Split::Test);
  EXPECT_EQ(parse_prompt_template("r1zero"), PromptTemplate::R1Zero);
  EXPECT_THROW(parse_split("validation"), InvalidArgument);
  EXPECT_THROW(parse_prompt_template("chatml"), InvalidArgument);
  try {
    validate_task_options(options("sudoku", 1));
    FAIL() << "no exception";
  } catch (const InvalidArgument& e) {
    EXPECT_NE(std::string(e.what()).find("arith, countdown"), std::string::npos) << e.what();
  }
}

struct CliResult {
  int exit_code = -1;
  std::string out, err;
};

CliResult run_cli(const std::string& args) {
  const std::string out = temp_path("task_out"), err = temp_path("task_err");
  const int status = std::system((std::string(PONDER_BINARY_DIR) + "/ponder " + args + " >" + out + " 2>" + err).c_str());
  auto slurp = [](const std::string& p) {
    std::ifstream in(p, std::ios::binary);
    return std::string(std::istreambuf_iterator<char>(in), {});
  };
  return {WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status), slurp(out), slurp(err)};
}

TEST(TaskCli, PrintsJsonl) {
  const CliResult r = run_cli("task --name countdown --split test --count 3 --seed 5 --difficulty 2");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  std::istringstream lines(r.out);
  std::string line;
  TaskOptions o = options("countdown", 2, Split::Test, 5);
  for (int i = 0; i < 3; ++i) {
    ASSERT_TRUE(std::getline(lines, line));
    const auto j = nlohmann::json::parse(line);
    const TaskItem item = generate_item(o, i);
    EXPECT_EQ(j["prompt"], item.prompt);
    EXPECT_EQ(j["answer"], item.answer);
    EXPECT_EQ(j["numbers"], item.numbers);
    EXPECT_EQ(j["target"], item.target);
  }
  EXPECT_FALSE(std::getline(lines, line));

  const CliResult sft = run_cli("task --name arith --count 2 --sft --template r1zero");
  ASSERT_EQ(sft.exit_code, 0) << sft.err;
  const auto first = nlohmann::json::parse(sft.out.substr(0, sft.out.find('\n')));
  o = options("arith", 0);  // the default difficulty of every command (default_difficulty)
  o.prompt_template = PromptTemplate::R1Zero;
  EXPECT_EQ(first["prompt"], generate_item(o, 0).prompt);
  EXPECT_EQ(first["completion"], sft_completion(generate_item(o, 0)));
  EXPECT_FALSE(first.contains("answer"));
}

TEST(TaskCli, BadArguments) {
  for (const char* args : {"task --name sudoku --count 1", "task --count 1 --split dev", "task --count 1 --difficulty 9",
                           "task --count 1 --template chatml", "task --count -2"}) {
    const CliResult r = run_cli(args);
    EXPECT_NE(r.exit_code, 0) << args;
    EXPECT_NE(r.err.find("error"), std::string::npos) << args << ": " << r.err;
  }
  EXPECT_NE(run_cli("task --name arith").exit_code, 0);  // --count is required
}

}  // namespace
}  // namespace ponder

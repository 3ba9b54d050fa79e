// JSONL task data (rules in tasks/dataset.h): round trips and errors that name file, line and field.
#include <filesystem>
#include <fstream>
#include <gtest/gtest.h>
#include <sstream>

#include "core/error.h"
#include "tasks/dataset.h"
#include "support/temp_path.h"

using ponder::testing::temp_path;

namespace ponder {
namespace {

std::vector<TaskItem> sample_items() {
  std::vector<TaskItem> items;
  for (const char* name : {"arith", "countdown"}) {
    TaskOptions o;
    o.name = name;
    o.difficulty = 2;
    for (TaskItem& item : generate_items(o, 5)) items.push_back(std::move(item));
  }
  return items;
}

TEST(DatasetJsonl, RlRoundTrip) {
  const std::vector<TaskItem> items = sample_items();
  std::stringstream ss;
  write_rl_jsonl(ss, items);
  EXPECT_TRUE(ss.str().starts_with("{\"prompt\":\"Q: ")) << ss.str();
  const std::vector<TaskItem> back = read_rl_jsonl(ss, "mem");
  ASSERT_EQ(back.size(), items.size());
  for (size_t i = 0; i < items.size(); ++i) {
    EXPECT_EQ(back[i].prompt, items[i].prompt);
    EXPECT_EQ(back[i].answer, items[i].answer);
    EXPECT_EQ(back[i].numbers, items[i].numbers);
    EXPECT_EQ(back[i].target, items[i].target);
    EXPECT_EQ(back[i].check, items[i].check);
    EXPECT_TRUE(back[i].reasoning.empty());  // not part of RL data
  }
  const TaskItem cd{.prompt = "Q: make 57 with 3 12 7 A: <think>", .answer = "(12+7)*3", .numbers = {3, 12, 7},
                    .target = 57, .check = AnswerCheck::Countdown};
  EXPECT_EQ(rl_json_line(cd),
            R"({"prompt":"Q: make 57 with 3 12 7 A: <think>","answer":"(12+7)*3","numbers":[3,12,7],"target":57})");
  EXPECT_EQ(rl_json_line(items[0]).find("numbers"), std::string::npos);  // arith: prompt and answer only
}

TEST(DatasetJsonl, SftRoundTrip) {
  const std::vector<TaskItem> items = sample_items();
  std::stringstream ss;
  write_sft_jsonl(ss, items);
  const std::vector<SftExample> back = read_sft_jsonl(ss, "mem");
  ASSERT_EQ(back.size(), items.size());
  for (size_t i = 0; i < items.size(); ++i) {
    EXPECT_EQ(back[i].prompt, items[i].prompt);
    EXPECT_EQ(back[i].completion, sft_completion(items[i]));
  }
  EXPECT_EQ(sft_json_line({"Q: 1+1= A: <think>", " 1+1=2 </think> <answer> 2 </answer>"}),
            R"({"prompt":"Q: 1+1= A: <think>","completion":" 1+1=2 </think> <answer> 2 </answer>"})");
}

TEST(DatasetJsonl, FileWithBlankLinesAndCrlf) {
  const std::string path = temp_path("dataset_test.jsonl");
  std::ofstream(path, std::ios::binary) << "{\"prompt\": \"p1\", \"answer\": \"1\", \"extra\": true}\r\n"
                                        << "\n   \n"
                                        << "{\"prompt\": \"p\\u00e9\", \"answer\": \"x\", \"numbers\": [1, 2], \"target\": 3}";
  const std::vector<TaskItem> items = read_rl_dataset(path);
  ASSERT_EQ(items.size(), 2u);
  EXPECT_EQ(items[0].prompt, "p1");
  EXPECT_EQ(items[0].check, AnswerCheck::Match);
  EXPECT_EQ(items[1].prompt, "p\xc3\xa9");
  EXPECT_EQ(items[1].numbers, (std::vector<int>{1, 2}));
  EXPECT_EQ(items[1].target, 3);
  EXPECT_EQ(items[1].check, AnswerCheck::Countdown);
  std::filesystem::remove(path);
}

// The message of the FormatError that reading `text` raises.
std::string rl_error(const std::string& text) {
  std::istringstream in(text);
  try {
    read_rl_jsonl(in, "data.jsonl");
  } catch (const FormatError& e) {
    return e.what();
  }
  return "(no error)";
}

std::string sft_error(const std::string& text) {
  std::istringstream in(text);
  try {
    read_sft_jsonl(in, "sft.jsonl");
  } catch (const FormatError& e) {
    return e.what();
  }
  return "(no error)";
}

void expect_mentions(const std::string& message, std::initializer_list<const char*> parts) {
  for (const char* part : parts) EXPECT_NE(message.find(part), std::string::npos) << "'" << part << "' in: " << message;
}

TEST(DatasetJsonl, Errors) {
  const std::string good = "{\"prompt\": \"p\", \"answer\": \"a\"}\n";
  expect_mentions(rl_error(good + "{\"answer\": \"a\"}\n"), {"data.jsonl:2", "'prompt'", "missing"});
  expect_mentions(rl_error(good + good + "{\"prompt\": \"p\"}"), {"data.jsonl:3", "'answer'", "missing"});
  expect_mentions(rl_error("{\"prompt\": 5, \"answer\": \"a\"}"), {"data.jsonl:1", "'prompt'", "string", "number"});
  expect_mentions(rl_error("{\"prompt\": \"p\", \"answer\": 16}"), {"data.jsonl:1", "'answer'", "string", "number"});
  expect_mentions(rl_error(good + "{\"prompt\": \"p\", \"answer\": "), {"data.jsonl:2", "bad JSON"});
  expect_mentions(rl_error("not json"), {"data.jsonl:1", "bad JSON"});
  expect_mentions(rl_error("[\"prompt\", \"answer\"]"), {"data.jsonl:1", "object", "array"});
  expect_mentions(rl_error("{\"prompt\": \"p\", \"answer\": \"a\", \"numbers\": [1]}"), {"data.jsonl:1", "'target'"});
  expect_mentions(rl_error("{\"prompt\": \"p\", \"answer\": \"a\", \"target\": 3}"), {"data.jsonl:1", "'numbers'"});
  expect_mentions(rl_error("{\"prompt\": \"p\", \"answer\": \"a\", \"numbers\": [1, \"2\"], \"target\": 3}"),
                  {"data.jsonl:1", "'numbers'[1]", "integer"});
  expect_mentions(rl_error("{\"prompt\": \"p\", \"answer\": \"a\", \"numbers\": 1, \"target\": 3}"),
                  {"data.jsonl:1", "'numbers'", "array"});
  expect_mentions(rl_error("{\"prompt\": \"p\", \"answer\": \"a\", \"numbers\": [1], \"target\": 3.5}"),
                  {"data.jsonl:1", "'target'", "integer"});
  expect_mentions(rl_error("{\"prompt\": \"p\xff\", \"answer\": \"a\"}"), {"data.jsonl:1", "bad JSON"});
  expect_mentions(sft_error("{\"prompt\": \"p\", \"answer\": \"a\"}"), {"sft.jsonl:1", "'completion'", "missing", "'reasoning'"});
  expect_mentions(sft_error("{\"prompt\": \"p\", \"reasoning\": \"r\", \"answer\": 5}"), {"sft.jsonl:1", "'answer'", "string"});
  expect_mentions(sft_error("{\"prompt\": \"p\", \"completion\": null}"), {"sft.jsonl:1", "'completion'", "null"});
  EXPECT_EQ(rl_error(""), "(no error)");  // an empty file is an empty dataset
  EXPECT_THROW(read_rl_dataset("/nonexistent/ponder.jsonl"), FormatError);
  EXPECT_THROW(read_sft_dataset("/nonexistent/ponder.jsonl"), FormatError);
}

TEST(DatasetJsonl, WriteRejectsInvalidUtf8) {
  TaskItem item{.prompt = "bad \xff byte", .answer = "1"};
  EXPECT_THROW(rl_json_line(item), InvalidArgument);
}

}  // namespace
}  // namespace ponder

// JSONL task data (rules in dataset.h).
#include "tasks/dataset.h"

#include <cstdint>
#include <fstream>
#include <istream>
#include <nlohmann/json.hpp>
#include <ostream>

#include "core/error.h"

namespace ponder {
namespace {

using nlohmann::json;

std::string where(const std::string& name, int line) { return name + ":" + std::to_string(line); }

const json& require_field(const json& obj, const char* field, json::value_t type, const char* type_name,
                          const std::string& at) {
  const auto it = obj.find(field);
  if (it == obj.end()) throw FormatError(at + ": field '" + field + "' is missing");
  const bool ok = type == json::value_t::number_integer ? it->is_number_integer() : it->type() == type;
  if (!ok) throw FormatError(at + ": field '" + field + "': expected " + type_name + ", got " + it->type_name());
  return *it;
}

std::string require_string(const json& obj, const char* field, const std::string& at) {
  return require_field(obj, field, json::value_t::string, "a string", at).get<std::string>();
}

// Calls on_object(object, "FILE:LINE") for every non-empty line.
template <class F>
void for_each_object(std::istream& in, const std::string& name, F on_object) {
  std::string line;
  for (int n = 1; std::getline(in, line); ++n) {
    if (!line.empty() && line.back() == '\r') line.pop_back();
    if (line.find_first_not_of(" \t") == std::string::npos) continue;
    const std::string at = where(name, n);
    json obj;
    try {
      obj = json::parse(line);
    } catch (const json::parse_error& e) {
      throw FormatError(at + ": bad JSON: " + e.what());
    }
    if (!obj.is_object()) throw FormatError(at + ": expected a JSON object, got " + std::string(obj.type_name()));
    on_object(obj, at);
  }
}

std::ifstream open_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw FormatError(path + ": cannot open");
  return in;
}

std::string dump_line(const nlohmann::ordered_json& obj, const char* what) {
  try {
    return obj.dump();
  } catch (const json::type_error& e) {
    throw InvalidArgument(std::string(what) + ": text is not valid UTF-8 (" + e.what() + ")");
  }
}

}  // namespace

std::vector<TaskItem> read_rl_jsonl(std::istream& in, const std::string& name) {
  std::vector<TaskItem> items;
  for_each_object(in, name, [&](const json& obj, const std::string& at) {
    TaskItem item;
    item.prompt = require_string(obj, "prompt", at);
    item.question = item.prompt;  // a chat model's user message (decode/item_format.h)
    item.answer = require_string(obj, "answer", at);
    const bool has_numbers = obj.contains("numbers"), has_target = obj.contains("target");
    if (has_numbers != has_target)
      throw FormatError(at + ": field '" + (has_numbers ? "target" : "numbers") + "' is missing (countdown items " +
                        "need both 'numbers' and 'target')");
    if (has_numbers) {
      const json& numbers = require_field(obj, "numbers", json::value_t::array, "an array of integers", at);
      for (size_t i = 0; i < numbers.size(); ++i) {
        if (!numbers[i].is_number_integer() || numbers[i].get<int64_t>() < INT32_MIN ||
            numbers[i].get<int64_t>() > INT32_MAX)
          throw FormatError(at + ": field 'numbers'[" + std::to_string(i) + "]: expected an integer, got " +
                            numbers[i].dump());
        item.numbers.push_back(numbers[i].get<int>());
      }
      const json& target = require_field(obj, "target", json::value_t::number_integer, "an integer", at);
      if (target.is_number_unsigned() && target.get<uint64_t>() > uint64_t(INT64_MAX))
        throw FormatError(at + ": field 'target': " + target.dump() + " is out of range");
      item.target = target.get<int64_t>();
      item.check = AnswerCheck::Countdown;
    }
    items.push_back(std::move(item));
  });
  return items;
}

std::vector<SftExample> read_sft_jsonl(std::istream& in, const std::string& name) {
  std::vector<SftExample> examples;
  for_each_object(in, name, [&](const json& obj, const std::string& at) {
    SftExample e{.prompt = require_string(obj, "prompt", at)};
    if (!obj.contains("completion") && obj.contains("reasoning") && obj.contains("answer")) {
      e.reasoning = require_string(obj, "reasoning", at);
      e.answer = require_string(obj, "answer", at);
      e.structured = true;
    } else if (obj.contains("completion")) {
      e.completion = require_string(obj, "completion", at);
    } else {
      throw FormatError(at + ": field 'completion' is missing (an SFT example holds 'prompt' and 'completion', or "
                        "'prompt', 'reasoning' and 'answer')");
    }
    examples.push_back(std::move(e));
  });
  return examples;
}

std::vector<TaskItem> read_rl_dataset(const std::string& path) {
  std::ifstream in = open_file(path);
  return read_rl_jsonl(in, path);
}

std::vector<SftExample> read_sft_dataset(const std::string& path) {
  std::ifstream in = open_file(path);
  return read_sft_jsonl(in, path);
}

std::string rl_json_line(const TaskItem& item) {
  nlohmann::ordered_json obj = nlohmann::ordered_json::object();
  obj["prompt"] = item.prompt;
  obj["answer"] = item.answer;
  if (item.check == AnswerCheck::Countdown) {
    obj["numbers"] = item.numbers;
    obj["target"] = item.target;
  }
  return dump_line(obj, "RL item");
}

std::string sft_json_line(const SftExample& example) {
  nlohmann::ordered_json obj = nlohmann::ordered_json::object();
  obj["prompt"] = example.prompt;
  if (example.structured) {
    obj["reasoning"] = example.reasoning;
    obj["answer"] = example.answer;
  } else {
    obj["completion"] = example.completion;
  }
  return dump_line(obj, "SFT example");
}

SftExample make_sft_example(const TaskItem& item) { return {.prompt = item.prompt, .completion = sft_completion(item)}; }

void write_rl_jsonl(std::ostream& out, std::span<const TaskItem> items) {
  for (const TaskItem& item : items) out << rl_json_line(item) << '\n';
}

void write_sft_jsonl(std::ostream& out, std::span<const TaskItem> items) {
  for (const TaskItem& item : items) out << sft_json_line(make_sft_example(item)) << '\n';
}

}  // namespace ponder

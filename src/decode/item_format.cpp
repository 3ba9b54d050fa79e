#include "decode/item_format.h"

#include <algorithm>
#include <vector>

namespace ponder {

namespace {

std::string user_message(const TaskItem& item) { return item.question.empty() ? item.prompt : item.question; }

std::string chat_prompt(ChatFormat fmt, const std::string& user) {
  const std::vector<ChatMessage> messages = {{"user", user}};
  std::string p = render_chat(fmt, messages, true);
  if (fmt == ChatFormat::ChatML) p += "<think>\n";  // R1's generation prompt opens it already
  return p;
}

std::string chat_completion(const std::string& reasoning, const std::string& answer) {
  return reasoning + "\n</think>\n\n" + answer;
}

}  // namespace

TaskItem ItemFormat::apply(TaskItem item) const {
  if (!chat) return item;
  item.prompt = chat_prompt(*chat, user_message(item));
  item.style = AnswerStyle::Boxed;
  return item;
}

std::string ItemFormat::completion(const TaskItem& item) const {
  if (!chat) return sft_completion(item);
  return chat_completion(item.reasoning, "The answer is \\boxed{" + item.answer + "}.");
}

std::pair<std::string, std::string> ItemFormat::example(const SftExample& e) const {
  const std::string prompt = chat ? chat_prompt(*chat, e.prompt) : e.prompt;
  if (!e.structured) return {prompt, e.completion};
  if (chat) return {prompt, chat_completion(e.reasoning, e.answer)};
  return {prompt, sft_completion(TaskItem{.answer = e.answer, .reasoning = e.reasoning})};
}

std::string ItemFormat::data_prompt(const TaskItem& item) const { return chat ? user_message(item) : item.prompt; }

std::string ItemFormat::name() const { return chat ? chat_format_name(*chat) : "compact"; }

ItemFormat item_format_of(const GgufFile& f) {
  const bool has_template = std::any_of(f.metadata.begin(), f.metadata.end(),
                                        [](const auto& kv) { return kv.first == "tokenizer.chat_template"; });
  if (!has_template) return {};
  const ChatFormat fmt = detect_chat_format(f);
  if (fmt == ChatFormat::Compact) return {};
  return {.chat = fmt};
}

}  // namespace ponder

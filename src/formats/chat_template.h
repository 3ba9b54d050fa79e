#pragma once
// Chat prompts for the two template families ponder knows, rendered exactly as the model's Jinja
// template (tokenizer.chat_template) renders them for system/user/assistant messages without tools,
// except that the BOS token text is left out: the tokenizer adds BOS (add_special), as llama.cpp does.
//
// R1Distill (DeepSeek-R1-Distill-*): the last system message's content comes first, then
// "<｜User｜>" + content per user turn and "<｜Assistant｜>" + content + "<｜end▁of▁sentence｜>" per
// assistant turn, where content is cut to the text after its last "</think>" (not stripped, so
// "...</think>\n\nHi" keeps "\n\nHi"). Generation prompt: "<｜Assistant｜><think>\n".
// ChatML (Qwen2): "<|im_start|>" + role + "\n" + content + "<|im_end|>\n" per message, preceded by
// the default system turn "You are a helpful assistant" (no period) when the first message is not a
// system message. Generation prompt: "<|im_start|>assistant\n".
#include <span>
#include <string>
#include <string_view>

#include "formats/gguf.h"

namespace ponder {

enum class ChatFormat { R1Distill, ChatML };

struct ChatMessage {
  std::string role;  // "system" | "user" | "assistant"
  std::string content;
};

// From tokenizer.chat_template: contains "<｜Assistant｜>" -> R1Distill, "<|im_start|>" -> ChatML.
// Missing or unrecognised template -> FormatError naming the file (force one with --chat-format).
ChatFormat detect_chat_format(const GgufFile& f);

// The --chat-format flag values: "r1" | "chatml"; InvalidArgument otherwise.
ChatFormat parse_chat_format(std::string_view name);
std::string chat_format_name(ChatFormat fmt);

// Renders the conversation; a message with another role -> InvalidArgument naming the role.
std::string render_chat(ChatFormat fmt, std::span<const ChatMessage> messages, bool add_generation_prompt);

}  // namespace ponder

#pragma once
// Chat prompts for the three template families ponder knows, rendered exactly as the model's Jinja
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
// Compact (the models ponder trains, the prompt format of its built-in tasks, tasks/task.h): the
// last system message's content first (as R1), then "Q: " + content + " " per user turn and
// "A: <think>" + content + "<|eos|>" per assistant turn. Generation prompt: "A: <think>". So the
// user message "12+7-3=" renders "Q: 12+7-3= A: <think>", the arith task's prompt exactly.
#include <span>
#include <string>
#include <string_view>

#include "formats/gguf.h"

namespace ponder {

enum class ChatFormat { R1Distill, ChatML, Compact };

struct ChatMessage {
  std::string role;  // "system" | "user" | "assistant"
  std::string content;
};

// From tokenizer.chat_template: contains "<｜Assistant｜>" -> R1Distill, "<|im_start|>" -> ChatML,
// "A: <think>" -> Compact.
// Missing or unrecognised template -> FormatError naming the file (force one with --chat-format).
ChatFormat detect_chat_format(const GgufFile& f);

// The --chat-format flag values: "r1" | "chatml" | "compact"; InvalidArgument otherwise.
ChatFormat parse_chat_format(std::string_view name);
std::string chat_format_name(ChatFormat fmt);

// The Jinja text of the Compact template, for tokenizer.chat_template of the GGUF files ponder
// trains (llama.cpp renders it as render_chat(Compact, ...) does, with the BOS token first).
const std::string& compact_chat_template();

// Renders the conversation; a message with another role -> InvalidArgument naming the role.
std::string render_chat(ChatFormat fmt, std::span<const ChatMessage> messages, bool add_generation_prompt);

}  // namespace ponder

// Chat templates: the R1 distill and Qwen2 ChatML Jinja templates re-implemented for plain
// system/user/assistant conversations (see chat_template.h for the exact rules).
#include "formats/chat_template.h"

#include <variant>

#include "core/error.h"

namespace ponder {
namespace {

constexpr std::string_view kR1User = "<｜User｜>";
constexpr std::string_view kR1Assistant = "<｜Assistant｜>";
constexpr std::string_view kR1End = "<｜end▁of▁sentence｜>";
constexpr std::string_view kThinkEnd = "</think>";
constexpr std::string_view kImStart = "<|im_start|>";
constexpr std::string_view kImEnd = "<|im_end|>";
constexpr std::string_view kQwenDefaultSystem = "You are a helpful assistant";
constexpr std::string_view kCompactUser = "Q: ";
constexpr std::string_view kCompactAssistant = "A: <think>";
constexpr std::string_view kCompactEnd = "<|eos|>";

void check_roles(std::span<const ChatMessage> messages) {
  for (size_t i = 0; i < messages.size(); ++i) {
    const std::string& role = messages[i].role;
    if (role != "system" && role != "user" && role != "assistant")
      throw InvalidArgument("chat message " + std::to_string(i) + ": role '" + role +
                            "' is not one of system, user, assistant");
  }
}

// The template's `content.split('</think>')[-1]`: the text after the last "</think>", unstripped.
std::string_view cut_reasoning(std::string_view content) {
  size_t pos = content.rfind(kThinkEnd);
  return pos == std::string_view::npos ? content : content.substr(pos + kThinkEnd.size());
}

std::string render_r1(std::span<const ChatMessage> messages, bool add_generation_prompt) {
  std::string out;
  for (const ChatMessage& m : messages)  // the last system message wins, placed first
    if (m.role == "system") out = m.content;
  for (const ChatMessage& m : messages) {
    if (m.role == "user") {
      out += kR1User;
      out += m.content;
    } else if (m.role == "assistant") {
      out += kR1Assistant;
      out += cut_reasoning(m.content);
      out += kR1End;
    }
  }
  if (add_generation_prompt) {
    out += kR1Assistant;
    out += "<think>\n";
  }
  return out;
}

void append_chatml_turn(std::string& out, std::string_view role, std::string_view content) {
  out += kImStart;
  out += role;
  out += '\n';
  out += content;
  out += kImEnd;
  out += '\n';
}

std::string render_chatml(std::span<const ChatMessage> messages, bool add_generation_prompt) {
  std::string out;
  if (!messages.empty() && messages[0].role != "system")
    append_chatml_turn(out, "system", kQwenDefaultSystem);
  for (const ChatMessage& m : messages) append_chatml_turn(out, m.role, m.content);
  if (add_generation_prompt) {
    out += kImStart;
    out += "assistant\n";
  }
  return out;
}

std::string render_compact(std::span<const ChatMessage> messages, bool add_generation_prompt) {
  std::string out;
  for (const ChatMessage& m : messages)  // the last system message wins, placed first
    if (m.role == "system") out = m.content;
  for (const ChatMessage& m : messages) {
    if (m.role == "user") {
      out += kCompactUser;
      out += m.content;
      out += ' ';
    } else if (m.role == "assistant") {
      out += kCompactAssistant;
      out += m.content;
      out += kCompactEnd;
    }
  }
  if (add_generation_prompt) out += kCompactAssistant;
  return out;
}

}  // namespace

const std::string& compact_chat_template() {
  static const std::string t =
      "{{ bos_token }}"
      "{%- set ns = namespace(system='') -%}"
      "{%- for message in messages -%}"
      "{%- if message['role'] == 'system' -%}{%- set ns.system = message['content'] -%}{%- endif -%}"
      "{%- endfor -%}"
      "{{ ns.system }}"
      "{%- for message in messages -%}"
      "{%- if message['role'] == 'user' -%}{{ 'Q: ' + message['content'] + ' ' }}"
      "{%- elif message['role'] == 'assistant' -%}{{ 'A: <think>' + message['content'] + '<|eos|>' }}"
      "{%- endif -%}"
      "{%- endfor -%}"
      "{%- if add_generation_prompt -%}{{ 'A: <think>' }}{%- endif -%}";
  return t;
}

ChatFormat detect_chat_format(const GgufFile& f) {
  const std::string key = "tokenizer.chat_template";
  const GgufValue* v = f.find(key);
  const std::string hint = "; force a format with --chat-format r1|chatml|compact";
  if (!v) throw FormatError(f.path + ": no " + key + " in the metadata" + hint);
  const std::string* text = std::get_if<std::string>(&v->v);
  if (!text)
    throw FormatError(f.path + ": " + key + " is a " + gguf_type_name(v->type()) + ", expected a string" + hint);
  if (text->find(kR1Assistant) != std::string::npos) return ChatFormat::R1Distill;
  if (text->find(kImStart) != std::string::npos) return ChatFormat::ChatML;
  if (text->find(kCompactAssistant) != std::string::npos) return ChatFormat::Compact;
  throw FormatError(f.path + ": " + key + " is neither the R1 distill template (<｜Assistant｜>), ChatML" +
                    " (<|im_start|>) nor ponder's compact template (A: <think>)" + hint);
}

ChatFormat parse_chat_format(std::string_view name) {
  if (name == "r1") return ChatFormat::R1Distill;
  if (name == "chatml") return ChatFormat::ChatML;
  if (name == "compact") return ChatFormat::Compact;
  throw InvalidArgument("--chat-format: expected r1, chatml or compact, got '" + std::string(name) + "'");
}

std::string chat_format_name(ChatFormat fmt) {
  return fmt == ChatFormat::R1Distill ? "r1" : fmt == ChatFormat::ChatML ? "chatml" : "compact";
}

std::string render_chat(ChatFormat fmt, std::span<const ChatMessage> messages, bool add_generation_prompt) {
  check_roles(messages);
  switch (fmt) {
    case ChatFormat::R1Distill: return render_r1(messages, add_generation_prompt);
    case ChatFormat::ChatML: return render_chatml(messages, add_generation_prompt);
    case ChatFormat::Compact: return render_compact(messages, add_generation_prompt);
  }
  return {};
}

}  // namespace ponder

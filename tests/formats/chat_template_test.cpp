// Chat templates: R1 prompts rendered and tokenized must give llama.cpp's prompt ids
// (../shared/refdata/tiny_r1distill_llamacpp.json); ChatML against hand-written text; detection
// from the model files and errors.
#include <gtest/gtest.h>
#include <unistd.h>

#include <algorithm>
#include <filesystem>
#include <map>
#include <vector>

#include "core/error.h"
#include "formats/chat_template.h"
#include "formats/gguf.h"
#include "formats/tokenizer.h"
#include "support/shared_data.h"
#include "support/temp_path.h"

using ponder::testing::temp_path;

namespace ponder {
namespace {

using ponder::testing::read_json;
using ponder::testing::shared_path;

const std::string kR1Model = "models/tiny-r1distill-random.gguf";
const std::string kQwenModel = "models/tiny-qwen2-random.gguf";
const std::string kR1Refdata = "refdata/tiny_r1distill_llamacpp.json";

// Loading a 150k-token vocabulary takes a moment: once per test binary.
const Tokenizer& r1_tokenizer() {
  static const Tokenizer tok = Tokenizer::from_gguf(read_gguf(shared_path(kR1Model)));
  return tok;
}

// The conversations behind the refdata cases, written by hand.
std::map<std::string, std::vector<ChatMessage>> r1_conversations() {
  return {
      {"r1_chat_math",
       {{"user", "What is 17*23? Please reason step by step, and put your final answer within \\boxed{}."}}},
      {"r1_chat_system",
       {{"system", "You are a careful assistant."}, {"user", "Count the letters r in \"strawberry\"."}}},
      // The template cuts the earlier answer to the text after "</think>" and does not strip it, so
      // the reasoning block ends right before the answer text here (see R1KeepsNewlinesAfterThink).
      {"r1_multiturn",
       {{"user", "Hi"},
        {"assistant", "<think>\nThe user says hi. I should greet back.\n</think>Hello! How can I help?"},
        {"user", "2+2?"}}},
  };
}

TEST(ChatTemplateR1, PromptTokensMatchLlamaCpp) {
  PONDER_REQUIRE_SHARED(kR1Model);
  PONDER_REQUIRE_SHARED(kR1Refdata);
  const nlohmann::json ref = read_json(shared_path(kR1Refdata));
  const auto conversations = r1_conversations();
  int n_checked = 0;
  for (const auto& c : ref["cases"]) {
    auto it = conversations.find(c["name"].get<std::string>());
    if (it == conversations.end()) continue;
    SCOPED_TRACE(it->first);
    std::string prompt = render_chat(ChatFormat::R1Distill, it->second, /*add_generation_prompt=*/true);
    EXPECT_EQ(prompt, c["prompt"].get<std::string>());
    std::vector<int32_t> ids = r1_tokenizer().encode(prompt, /*add_special=*/true, /*parse_special=*/true);
    EXPECT_EQ(ids, c["prompt_tokens"].get<std::vector<int32_t>>());
    ++n_checked;
  }
  EXPECT_EQ(n_checked, 3);
}

TEST(ChatTemplateR1, CutsReasoningAfterLastThinkEndWithoutStripping) {
  std::vector<ChatMessage> m = {{"user", "Hi"}, {"assistant", "<think>\nx\n</think>\n\nHello! How can I help?"}};
  EXPECT_EQ(render_chat(ChatFormat::R1Distill, m, false),
            "<｜User｜>Hi<｜Assistant｜>\n\nHello! How can I help?<｜end▁of▁sentence｜>");
  m[1].content = "a</think>b</think>c";  // split('</think>')[-1]
  EXPECT_EQ(render_chat(ChatFormat::R1Distill, m, false), "<｜User｜>Hi<｜Assistant｜>c<｜end▁of▁sentence｜>");
}

TEST(ChatTemplateR1, SystemPromptsAndGenerationPrompt) {
  // The last system message wins and goes first, wherever it is.
  std::vector<ChatMessage> m = {{"system", "A"}, {"user", "q"}, {"system", "B"}};
  EXPECT_EQ(render_chat(ChatFormat::R1Distill, m, true), "B<｜User｜>q<｜Assistant｜><think>\n");
  EXPECT_EQ(render_chat(ChatFormat::R1Distill, {}, true), "<｜Assistant｜><think>\n");
  EXPECT_EQ(render_chat(ChatFormat::R1Distill, {}, false), "");
}

TEST(ChatTemplateChatML, TwoTurnsWithDefaultSystemPrompt) {
  std::vector<ChatMessage> m = {{"user", "Hi"}, {"assistant", "Hello!"}, {"user", "2+2?"}};
  EXPECT_EQ(render_chat(ChatFormat::ChatML, m, true),
            "<|im_start|>system\nYou are a helpful assistant<|im_end|>\n"
            "<|im_start|>user\nHi<|im_end|>\n"
            "<|im_start|>assistant\nHello!<|im_end|>\n"
            "<|im_start|>user\n2+2?<|im_end|>\n"
            "<|im_start|>assistant\n");
}

TEST(ChatTemplateChatML, OwnSystemPromptAndNoCutting) {
  std::vector<ChatMessage> m = {{"system", "Be brief."}, {"user", "Hi"}, {"assistant", "<think>x</think>Yo"}};
  EXPECT_EQ(render_chat(ChatFormat::ChatML, m, false),
            "<|im_start|>system\nBe brief.<|im_end|>\n"
            "<|im_start|>user\nHi<|im_end|>\n"
            "<|im_start|>assistant\n<think>x</think>Yo<|im_end|>\n");
  EXPECT_EQ(render_chat(ChatFormat::ChatML, {}, true), "<|im_start|>assistant\n");
}

TEST(ChatTemplateChatML, TokenizesWithQwenSpecialTokens) {
  PONDER_REQUIRE_SHARED(kQwenModel);
  Tokenizer tok = Tokenizer::from_gguf(read_gguf(shared_path(kQwenModel)));
  std::vector<ChatMessage> m = {{"user", "Hi"}};
  std::vector<int32_t> ids = tok.encode(render_chat(ChatFormat::ChatML, m, true), true, true);
  ASSERT_FALSE(ids.empty());
  EXPECT_EQ(ids.front(), tok.find_token("<|im_start|>"));  // no BOS for Qwen2
  EXPECT_EQ(std::count(ids.begin(), ids.end(), tok.find_token("<|im_end|>")), 2);
}

TEST(ChatTemplateDetect, ModelFiles) {
  PONDER_REQUIRE_SHARED(kR1Model);
  PONDER_REQUIRE_SHARED(kQwenModel);
  EXPECT_EQ(detect_chat_format(read_gguf(shared_path(kR1Model))), ChatFormat::R1Distill);
  EXPECT_EQ(detect_chat_format(read_gguf(shared_path(kQwenModel))), ChatFormat::ChatML);
}

// A metadata-only GGUF file in the temp directory, read back.
GgufFile file_with(const std::string& name, std::vector<std::pair<std::string, GgufValue>> metadata) {
  std::string path = temp_path("chat_" + name + ".gguf");
  write_gguf(path, metadata, {});
  GgufFile f = read_gguf(path);
  std::filesystem::remove(path);
  return f;
}

void expect_format_error(const GgufFile& f, const std::string& needle) {
  try {
    detect_chat_format(f);
    ADD_FAILURE() << "no FormatError for " << f.path;
  } catch (const FormatError& e) {
    std::string msg = e.what();
    EXPECT_NE(msg.find(f.path), std::string::npos) << msg;
    EXPECT_NE(msg.find("--chat-format"), std::string::npos) << msg;
    EXPECT_NE(msg.find(needle), std::string::npos) << msg;
  }
}

TEST(ChatTemplateDetect, Errors) {
  expect_format_error(file_with("missing", {{"general.name", GgufValue{std::string("x")}}}), "no tokenizer.chat_template");
  expect_format_error(file_with("unknown", {{"tokenizer.chat_template", GgufValue{std::string("{{ messages }}")}}}),
                      "neither");
  expect_format_error(file_with("not_string", {{"tokenizer.chat_template", GgufValue{uint32_t(7)}}}), "expected a string");
}

TEST(ChatTemplateFlags, ParseChatFormat) {
  EXPECT_EQ(parse_chat_format("r1"), ChatFormat::R1Distill);
  EXPECT_EQ(parse_chat_format("chatml"), ChatFormat::ChatML);
  EXPECT_EQ(chat_format_name(ChatFormat::R1Distill), "r1");
  EXPECT_EQ(chat_format_name(ChatFormat::ChatML), "chatml");
  EXPECT_THROW(parse_chat_format("R1"), InvalidArgument);
  EXPECT_THROW(parse_chat_format(""), InvalidArgument);
  EXPECT_THROW(parse_chat_format("llama3"), InvalidArgument);
}

TEST(ChatTemplateRoles, InvalidRoleNamed) {
  for (ChatFormat fmt : {ChatFormat::R1Distill, ChatFormat::ChatML}) {
    std::vector<ChatMessage> m = {{"user", "Hi"}, {"tool", "42"}};
    try {
      render_chat(fmt, m, true);
      ADD_FAILURE() << "role 'tool' accepted";
    } catch (const InvalidArgument& e) {
      EXPECT_NE(std::string(e.what()).find("'tool'"), std::string::npos) << e.what();
    }
    m[1].role = "User";  // roles are case-sensitive, as in the templates
    EXPECT_THROW(render_chat(fmt, m, true), InvalidArgument);
  }
}

}  // namespace
}  // namespace ponder

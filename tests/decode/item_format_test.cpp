// Task items and SFT examples in a model's format (decode/item_format.h): ponder's compact format
// unchanged, the R1-Distill chat template written out by hand, the special tokens of the rendered
// text, and the rewards of the Boxed answer style on hand-made completions.
#include <gtest/gtest.h>

#include "core/error.h"
#include "decode/item_format.h"
#include "formats/tokenizer.h"
#include "support/shared_data.h"
#include "tasks/reward.h"
#include "train/sft.h"

namespace ponder {
namespace {

// An arith item at difficulty 0 (tasks/task.h), written out.
TaskItem arith_305() {
  return {.prompt = "Q: 3+7-5= A: <think>", .question = "What is 3+7-5?", .answer = "5", .reasoning = "3+7=10 10-5=5"};
}

TEST(ItemFormat, CompactLeavesTheTaskTextsAsTheyAre) {
  const ItemFormat compact;
  const TaskItem item = arith_305();
  EXPECT_EQ(compact.apply(item).prompt, "Q: 3+7-5= A: <think>");
  EXPECT_EQ(compact.apply(item).style, AnswerStyle::Tags);
  EXPECT_EQ(compact.completion(item), " 3+7=10 10-5=5 </think> <answer> 5 </answer>");
  EXPECT_EQ(compact.data_prompt(item), "Q: 3+7-5= A: <think>");
  const SftExample structured{.prompt = "Q: 1+1= A: <think>", .reasoning = "1+1=2", .answer = "2", .structured = true};
  EXPECT_EQ(compact.example(structured).second, " 1+1=2 </think> <answer> 2 </answer>");
  EXPECT_EQ(compact.name(), "compact");
}

TEST(ItemFormat, R1DistillRendersTheQuestionAsTheUserTurn) {
  const ItemFormat r1{.chat = ChatFormat::R1Distill};
  const TaskItem item = arith_305();
  const TaskItem prompted = r1.apply(item);
  EXPECT_EQ(prompted.prompt, "<｜User｜>What is 3+7-5?<｜Assistant｜><think>\n");
  EXPECT_EQ(prompted.style, AnswerStyle::Boxed);
  EXPECT_EQ(r1.completion(item), "3+7=10 10-5=5\n</think>\n\nThe answer is \\boxed{5}.");
  EXPECT_EQ(r1.data_prompt(item), "What is 3+7-5?");
  // Data files: the prompt is the user message; a structured example's answer is kept as written.
  const auto [p, c] = r1.example({.prompt = "Hi?", .reasoning = "greet", .answer = "Hello.", .structured = true});
  EXPECT_EQ(p, "<｜User｜>Hi?<｜Assistant｜><think>\n");
  EXPECT_EQ(c, "greet\n</think>\n\nHello.");
  EXPECT_EQ(r1.example({.prompt = "Hi?", .completion = "x</think>y"}).second, "x</think>y");
  // RL data items carry their prompt as the question.
  TaskItem data_item{.prompt = "What is 2+2?", .question = "What is 2+2?", .answer = "4"};
  EXPECT_EQ(r1.apply(data_item).prompt, "<｜User｜>What is 2+2?<｜Assistant｜><think>\n");
  const ItemFormat chatml{.chat = ChatFormat::ChatML};
  EXPECT_EQ(chatml.apply(item).prompt,
            "<|im_start|>system\nYou are a helpful assistant<|im_end|>\n<|im_start|>user\nWhat is 3+7-5?<|im_end|>\n"
            "<|im_start|>assistant\n<think>\n");
}

// The R1-Distill file's template is recognised; its special tokens are single tokens in the SFT
// sequence, the loss starts at the completion and ends on <｜end▁of▁sentence｜>.
TEST(ItemFormat, R1DistillFileTokenizesTheTemplateAsSpecialTokens) {
  const char* rel = "models/tiny-r1distill-random.gguf";
  PONDER_REQUIRE_SHARED(rel);
  const GgufFile f = read_gguf(::ponder::testing::shared_path(rel));
  const ItemFormat fmt = item_format_of(f);
  ASSERT_TRUE(fmt.chat.has_value());
  EXPECT_EQ(fmt.name(), "r1");
  const Tokenizer tok = Tokenizer::from_gguf(f);
  const TaskItem item = fmt.apply(arith_305());
  const SftSequence s = tokenize_sft(tok, item.prompt, fmt.completion(arith_305()), 256);
  auto piece_at = [&](size_t i) { return tok.token_to_piece(s.tokens[i]); };
  EXPECT_EQ(s.tokens[0], tok.bos());
  EXPECT_EQ(piece_at(1), "<｜User｜>");
  size_t assistant = 0, think_close = 0;
  for (size_t i = 0; i < s.tokens.size(); ++i) {
    if (piece_at(i) == "<｜Assistant｜>") assistant = i;
    if (piece_at(i) == "</think>") think_close = i;
  }
  ASSERT_GT(assistant, 1u);
  EXPECT_EQ(piece_at(assistant + 1), "<think>");
  ASSERT_GT(think_close, assistant);
  // Targets: -1 through the prompt ("<think>\n" last), then every completion token, EOS last.
  const size_t first_target = s.targets.size() - (s.tokens.size() - 1 - (assistant + 2)) - 1;
  for (size_t t = 0; t < s.targets.size(); ++t) EXPECT_EQ(s.targets[t] >= 0, t >= first_target) << t;
  EXPECT_EQ(s.targets.back(), tok.eos());
  EXPECT_EQ(tok.token_to_piece(tok.eos()), "<｜end▁of▁sentence｜>");
}

TEST(ItemFormat, FilesWithoutAChatTemplateAreCompact) {
  const char* rel = "models/stories260K.gguf";
  PONDER_REQUIRE_SHARED(rel);
  EXPECT_FALSE(item_format_of(read_gguf(::ponder::testing::shared_path(rel))).chat.has_value());
}

// Rewards of the Boxed style, by hand: the answer is the \boxed{} after the first "</think>".
TEST(ItemFormat, BoxedRewards) {
  TaskItem item = ItemFormat{.chat = ChatFormat::R1Distill}.apply(arith_305());
  const RewardSpec spec = parse_reward_spec("accuracy:1,format:0.5,tinyzero:0.25");
  auto values = [&](const std::string& c) { return compute_rewards(spec, c, 10, item).values; };
  using V = std::vector<float>;
  EXPECT_EQ(values("3+7=10 10-5=5\n</think>\n\nThe answer is \\boxed{5}."), (V{1, 1, 1}));
  EXPECT_EQ(values("3+7=10 10-5=6\n</think>\n\nThe answer is \\boxed{6}."), (V{0, 1, 0.1f}));
  EXPECT_EQ(values("no end tag, \\boxed{5}"), (V{0, 0, 0}));                       // still thinking
  EXPECT_EQ(values("\\boxed{6}</think>\n\nThe answer is 5."), (V{0, 0, 0}));       // no box after it
  EXPECT_EQ(values("a\n</think>\n\n\\boxed{5} <think>"), (V{1, 0, 1}));            // a tag in the answer
  EXPECT_EQ(values("a <answer>\n</think>\n\n\\boxed{5}"), (V{1, 0, 1}));           // a tag in the reasoning
  EXPECT_EQ(values("a\n</think>\n\nThe answer is \\boxed{5"), (V{0, 0, 0.1f}));    // unclosed box
  // The Tags style of the same item judges <answer> blocks instead.
  item.style = AnswerStyle::Tags;
  EXPECT_EQ(values("a </think> <answer> 5 </answer>"), (V{1, 1, 1}));
  EXPECT_EQ(values("a\n</think>\n\nThe answer is \\boxed{5}."), (V{0, 0, 0}));
}

}  // namespace
}  // namespace ponder

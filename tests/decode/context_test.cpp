// The new-token limit within the model's context (prompt + new tokens <= context_length).
#include <gtest/gtest.h>

#include "core/error.h"
#include "decode/options.h"

namespace ponder {
namespace {

TEST(Context, MaxTokensStopAtTheContextLength) {
  EXPECT_EQ(max_tokens_within_context(100, 5, 512), 100) << "fits: unchanged";
  EXPECT_EQ(max_tokens_within_context(507, 5, 512), 507) << "exactly fills the context";
  EXPECT_EQ(max_tokens_within_context(508, 5, 512), 507);
  EXPECT_EQ(max_tokens_within_context(100000, 5, 512), 507);
  EXPECT_EQ(max_tokens_within_context(0, 512, 512), 0);
  EXPECT_EQ(max_tokens_within_context(2000000000, 2000000000, 2147483647), 147483647) << "no int overflow";
}

TEST(Context, APromptThatFillsTheContextIsAClearError) {
  for (const auto& [max_tokens, prompt] : {std::pair{1, 512}, std::pair{0, 513}, std::pair{10, 600}}) {
    try {
      max_tokens_within_context(max_tokens, prompt, 512);
      ADD_FAILURE() << "no throw for a prompt of " << prompt;
    } catch (const InvalidArgument& e) {
      const std::string msg = e.what();
      EXPECT_NE(msg.find("prompt has " + std::to_string(prompt) + " tokens"), std::string::npos) << msg;
      EXPECT_NE(msg.find("context is 512 positions"), std::string::npos) << msg;
    }
  }
}

}  // namespace
}  // namespace ponder

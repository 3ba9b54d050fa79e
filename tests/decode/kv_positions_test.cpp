// The one KV sizing rule (kv_positions_for): hand-computed sizes, int64 overflow refused with a
// clear error instead of wrapping into a tiny pool.
#include <gtest/gtest.h>

#include <limits>

#include "core/error.h"
#include "decode/model_runner.h"

namespace ponder {
namespace {

TEST(KvPositions, HandComputedSizes) {
  constexpr int bs = ModelRunner::kBlockSize;
  ASSERT_EQ(bs, 16);
  // One 300-token prompt, 16 paths of 64 tokens: 300 + 16 * (64 + 16) + 16.
  EXPECT_EQ(kv_positions_for(300, 1, 16, 64), 300 + 16 * 80 + 16);
  // Five prompts of 10 tokens, 8 paths of 96 tokens each: 50 + 5 * (8 * 112 + 16).
  const std::vector<std::vector<int32_t>> prompts(5, std::vector<int32_t>(10, 1));
  EXPECT_EQ(kv_positions_for(prompts, 8, 96), 50 + 5 * (8 * 112 + 16));
  EXPECT_EQ(kv_positions_for(prompts, 8, 96), kv_positions_for(50, 5, 8, 96));
  EXPECT_EQ(kv_positions_for(7, 1, 0, 0), 7 + 16);
}

TEST(KvPositions, OverflowIsAClearErrorNotAWrap) {
  // 64 prompts x 1024 paths x 100000 tokens = 6.5e9 positions: an int product would wrap.
  try {
    kv_positions_for(640, 64, 1024, 100000);
    FAIL() << "expected InvalidArgument";
  } catch (const InvalidArgument& e) {
    const std::string m = e.what();
    EXPECT_NE(m.find("1024 paths"), std::string::npos) << m;
    EXPECT_NE(m.find("100000 new tokens"), std::string::npos) << m;
  }
  EXPECT_THROW(kv_positions_for(0, 1, std::numeric_limits<int>::max(), std::numeric_limits<int>::max()),
               InvalidArgument);
  EXPECT_THROW(kv_positions_for(int64_t(std::numeric_limits<int>::max()) + 1, 1, 1, 1), InvalidArgument);
  EXPECT_THROW(kv_positions_for(10, 1, -1, 5), InvalidArgument);
  // Just below the limit is fine.
  const int64_t limit = std::numeric_limits<int>::max();
  EXPECT_EQ(kv_positions_for(limit - 32, 1, 1, 0), limit);
}

}  // namespace
}  // namespace ponder

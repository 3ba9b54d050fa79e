// The one KV sizing rule (kv_positions_for): hand-computed sizes, int64 overflow refused with a
// clear error instead of wrapping into a tiny pool.
#include <gtest/gtest.h>

#include <limits>

#include "core/error.h"
#include "decode/model_runner.h"
#include "model/kv_pool.h"

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
  // 20 new tokens after a prompt whose last block holds 13 positions span 3 blocks (the copied
  // block, then positions 16..31 and 32): 48 positions per path, not 20 + 16.
  EXPECT_EQ(kv_positions_for(29, 1, 4, 20), 29 + 4 * 48 + 16);
  EXPECT_EQ(kv_positions_for(0, 1, 1, 1), 16 + 16);
}

// The rule against the pool itself: prompts of every length modulo the block size, each kept alive
// while its paths (forked from it, so sharing its partly filled last block) write their new tokens
// one step at a time, all paths of all prompts in the same steps, with the forward's check of the
// step's worst case (KvPool::blocks_needed summed, as model/forward.cpp does) before each step.
// The pool, sized as ModelRunner sizes it from kv_positions_for, never runs out. (The old rule,
// tokens + one block per path, ran out at 20 new tokens after a 29-token prompt: a GRPO step
// failed with "KV cache is full".)
TEST(KvPositions, ThePoolNeverRunsOutForAnyPromptLength) {
  constexpr int bs = ModelRunner::kBlockSize;
  for (int n_new = 0; n_new <= 3 * bs + 1; ++n_new)
    for (int paths : {1, 3, 4})
      for (int r = 0; r < bs; ++r) {
        const std::vector<int> lengths = {2 * bs + r, r + 1, bs};  // three prompts, different residues
        std::vector<std::vector<int32_t>> prompts;
        for (int len : lengths) prompts.emplace_back(size_t(len), 1);
        const int positions = kv_positions_for(prompts, paths, n_new);
        KvPool pool(1, 1, bs, std::max(1, (positions + bs - 1) / bs));
        std::vector<KvSeq> held, live;
        for (int len : lengths) {
          KvSeq prompt;
          ASSERT_NO_THROW(pool.reserve(prompt, len));
          prompt.n_pos = len;
          for (int p = 0; p < paths; ++p) live.push_back(pool.fork(prompt));
          held.push_back(std::move(prompt));
        }
        for (int t = 0; t < n_new; ++t) {
          int need = 0;
          for (const KvSeq& s : live) need += pool.blocks_needed(s, 1);
          ASSERT_LE(need, pool.n_free()) << "new tokens " << n_new << ", paths " << paths << ", residue " << r
                                         << ", step " << t;
          for (KvSeq& s : live) {
            pool.reserve(s, 1);
            ++s.n_pos;
          }
        }
      }
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

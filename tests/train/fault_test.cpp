// No exception escapes an OpenMP region of the training passes: an allocation failure injected
// into any sgemm task of forward_train and backward_train (some run inside the attention's
// parallel region) reaches the caller as std::bad_alloc, and the passes work again afterwards.
#include <gtest/gtest.h>

#include <cmath>
#include <new>

#include "core/rng.h"
#include "kernels/gemm.h"
#include "train/forward_train.h"

namespace ponder {
namespace {

TEST(TrainFaults, AllocationFailureAnywhereIsAnExceptionNotATerminate) {
  TrainConfig c{.vocab = 11, .dim = 16, .n_layers = 1, .n_heads = 4, .n_kv_heads = 2, .ffn = 24, .ctx = 16, .tied = true};
  TrainModel m(c);
  Rng rng(1);
  for (float& p : m.params) p = 0.3f * float(rng.normal());
  TrainBatch b{.B = 2, .T = 10};
  for (int i = 0; i < b.B * b.T; ++i) {
    b.tokens.push_back(int32_t((7 * i + 3) % c.vocab));
    b.targets.push_back(int32_t((5 * i + 1) % c.vocab));
  }
  Activations a;
  std::vector<float> logp, grads(m.params.size());
  const std::vector<float> dlogp(size_t(b.B * b.T), -1.0f);
  const double want = forward_train(m, b, a, logp, 1.0f);
  ASSERT_TRUE(std::isfinite(want));

  int thrown = 0;
  for (int64_t after = 0;; ++after) {
    sgemm_fail_allocation_for_testing(after);
    try {
      forward_train(m, b, a, logp, 1.0f);
      backward_train(m, b, a, dlogp, grads);
    } catch (const std::bad_alloc&) {
      ++thrown;
      continue;
    }
    break;  // `after` passed the last task: nothing failed
  }
  sgemm_fail_allocation_for_testing(-1);
  EXPECT_GT(thrown, 5) << "every sgemm task of both passes was a failure point";
  EXPECT_EQ(forward_train(m, b, a, logp, 1.0f), want);
}

}  // namespace
}  // namespace ponder

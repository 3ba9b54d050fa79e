#include <gtest/gtest.h>
#include "core/fp16.h"
TEST(Fp16, RoundTrip) { EXPECT_EQ(ponder::fp16_to_fp32(ponder::fp32_to_fp16(1.5f)), 1.5f); }

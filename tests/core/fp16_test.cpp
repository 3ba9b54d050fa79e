// fp16 / bf16 conversions against the hardware (F16C vcvtps2ph / vcvtph2ps, AVX512_BF16 vcvtneps2bf16)
// and against a hand-written round-to-nearest-even reference for bf16.
#include <gtest/gtest.h>

#include <cstdint>
#include <cstring>
#include <vector>
#if defined(__x86_64__) || defined(__i386__)
#define PONDER_X86 1
#include <cpuid.h>
#include <immintrin.h>
#endif

#include "core/fp16.h"

namespace {

using ponder::bf16_to_fp32;
using ponder::fp16_to_fp32;
using ponder::fp32_from_bits;
using ponder::fp32_to_bf16;
using ponder::fp32_to_bits;
using ponder::fp32_to_fp16;

// ---- hardware conversions, compiled for their instruction sets whatever -march says ----
#ifdef PONDER_X86

__attribute__((target("f16c"))) uint16_t hw_fp32_to_fp16(float f) {
  return uint16_t(_cvtss_sh(f, _MM_FROUND_TO_NEAREST_INT));
}
__attribute__((target("f16c"))) float hw_fp16_to_fp32(uint16_t h) { return _cvtsh_ss(h); }

// Eight at a time, for the long sweeps.
__attribute__((target("f16c,avx"))) void hw_fp32_to_fp16_x8(const uint32_t* in, uint16_t* out) {
  __m256 x;
  std::memcpy(&x, in, 32);
  const __m128i h = _mm256_cvtps_ph(x, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
  std::memcpy(out, &h, 16);
}

__attribute__((target("avx512bf16,avx512vl"))) void hw_fp32_to_bf16_x4(const uint32_t* in, uint16_t* out) {
  __m128 x;
  std::memcpy(&x, in, 16);
  const __m128bh h = _mm_cvtneps_pbh(x);
  std::memcpy(out, &h, 8);  // the low four lanes
}

// CPU features from cpuid (clang 14's __builtin_cpu_supports knows neither "f16c" nor
// "avx512bf16"), with the OS saving the registers they use (XCR0).
bool os_saves_state(uint64_t xcr0_mask) {
  uint32_t a, b, c, d;
  if (!__get_cpuid(1, &a, &b, &c, &d) || !(c & (1u << 27))) return false;  // OSXSAVE
  uint32_t lo, hi;
  __asm__("xgetbv" : "=a"(lo), "=d"(hi) : "c"(0));
  return ((uint64_t(hi) << 32 | lo) & xcr0_mask) == xcr0_mask;
}
bool have_f16c() {
  uint32_t a, b, c, d;
  if (!__get_cpuid(1, &a, &b, &c, &d)) return false;
  return (c & (1u << 29)) && (c & (1u << 28)) && os_saves_state(0x6);  // F16C, AVX; XMM+YMM state
}
bool have_avx512_bf16() {
  uint32_t a, b, c, d;
  if (__get_cpuid_max(0, nullptr) < 7) return false;
  __cpuid_count(7, 0, a, b, c, d);
  const bool avx512f_vl = (b & (1u << 16)) && (b & (1u << 31));
  if (a < 1) return false;  // no subleaf 1
  __cpuid_count(7, 1, a, b, c, d);
  const bool bf16 = a & (1u << 5);
  return avx512f_vl && bf16 && os_saves_state(0xe6);  // XMM, YMM, opmask and ZMM state
}
#else  // no x86: the comparisons with the hardware skip themselves
bool have_f16c() { return false; }
bool have_avx512_bf16() { return false; }
uint16_t hw_fp32_to_fp16(float) { return 0; }
float hw_fp16_to_fp32(uint16_t) { return 0; }
void hw_fp32_to_fp16_x8(const uint32_t*, uint16_t*) {}
void hw_fp32_to_bf16_x4(const uint32_t*, uint16_t*) {}
#endif

#define REQUIRE_F16C() \
  if (!have_f16c()) GTEST_SKIP() << "this CPU lacks F16C (or is not x86): nothing to compare against"

// Compares fp32_to_fp16 with vcvtps2ph on `bits`; counts and reports the first few mismatches.
struct HalfChecker {
  std::vector<uint32_t> pending;
  size_t n_checked = 0;
  size_t n_bad = 0;

  void add(uint32_t bits) {
    pending.push_back(bits);
    if (pending.size() == 8) flush();
  }
  void flush() {
    while (!pending.empty() && pending.size() < 8) pending.push_back(0);
    if (pending.empty()) return;
    uint16_t hw[8];
    hw_fp32_to_fp16_x8(pending.data(), hw);
    for (int i = 0; i < 8; ++i) {
      const uint16_t ours = fp32_to_fp16(fp32_from_bits(pending[i]));
      ++n_checked;
      if (ours != hw[i] && ++n_bad <= 10)
        ADD_FAILURE() << std::hex << "fp32_to_fp16(bits 0x" << pending[i] << ") = 0x" << ours
                      << ", F16C gives 0x" << hw[i];
    }
    pending.clear();
  }
  ~HalfChecker() { flush(); }
};

// Hand-written float -> bf16: keep the top 16 bits, round the dropped 16 to nearest, ties to even;
// NaN becomes a quiet NaN with its top payload bits (what ggml and vcvtneps2bf16 do).
uint16_t reference_bf16(uint32_t u) {
  const uint32_t upper = u >> 16;
  const uint32_t lower = u & 0xffff;
  const uint32_t is_nan = (u & 0x7fffffffu) > 0x7f800000u;
  const uint32_t round_up = (lower > 0x8000) | ((lower == 0x8000) & upper);  // ties go to the even one
  return uint16_t(is_nan ? (upper | 0x0040) : upper + (round_up & 1));  // may carry into the exponent
}

bool is_fp32_subnormal(uint32_t u) { return (u & 0x7f800000u) == 0 && (u & 0x007fffffu) != 0; }

// ---- fp16 ----

TEST(Fp16, KnownValues) {
  EXPECT_EQ(fp32_to_fp16(0.0f), 0x0000);
  EXPECT_EQ(fp32_to_fp16(-0.0f), 0x8000);
  EXPECT_EQ(fp32_to_fp16(1.0f), 0x3c00);
  EXPECT_EQ(fp32_to_fp16(-2.0f), 0xc000);
  EXPECT_EQ(fp32_to_fp16(65504.0f), 0x7bff);           // largest half
  EXPECT_EQ(fp32_to_fp16(65519.996f), 0x7bff);         // just below the overflow threshold
  EXPECT_EQ(fp32_to_fp16(65520.0f), 0x7c00);           // the tie rounds to even: infinity
  EXPECT_EQ(fp32_to_fp16(-65520.0f), 0xfc00);
  EXPECT_EQ(fp32_to_fp16(5.9604645e-8f), 0x0001);      // 2^-24, smallest subnormal
  EXPECT_EQ(fp32_to_fp16(2.9802322e-8f), 0x0000);      // 2^-25: tie between 0 and 2^-24, to even
  EXPECT_EQ(fp32_to_fp16(6.1035156e-5f), 0x0400);      // 2^-14, smallest normal
  EXPECT_EQ(fp16_to_fp32(0x3555), 0.33325195f);
  EXPECT_EQ(fp16_to_fp32(0x0001), 5.9604645e-8f);
  EXPECT_EQ(fp16_to_fp32(0x7bff), 65504.0f);
  EXPECT_EQ(fp32_to_bits(fp16_to_fp32(0x7c00)), 0x7f800000u);
  EXPECT_EQ(fp32_to_bits(fp16_to_fp32(0xfc00)), 0xff800000u);
}

// Every half converts to the float F16C gives, bit for bit, and (NaNs aside) back to itself.
TEST(Fp16, AllHalvesMatchHardwareAndRoundTrip) {
  REQUIRE_F16C();
  int n_bad = 0;
  for (uint32_t h = 0; h < 65536; ++h) {
    const float ours = fp16_to_fp32(uint16_t(h));
    const float hw = hw_fp16_to_fp32(uint16_t(h));
    if (fp32_to_bits(ours) != fp32_to_bits(hw) && ++n_bad <= 10)
      ADD_FAILURE() << std::hex << "fp16_to_fp32(0x" << h << ") = bits 0x" << fp32_to_bits(ours)
                    << ", F16C gives 0x" << fp32_to_bits(hw);
    const bool is_nan = (h & 0x7c00) == 0x7c00 && (h & 0x3ff) != 0;
    const uint16_t back = fp32_to_fp16(ours);
    const uint16_t expect = is_nan ? uint16_t(h | 0x0200) : uint16_t(h);  // NaNs come back quiet
    if (back != expect && ++n_bad <= 10)
      ADD_FAILURE() << std::hex << "round trip of 0x" << h << " gave 0x" << back;
    if (back != hw_fp32_to_fp16(hw) && ++n_bad <= 10)
      ADD_FAILURE() << std::hex << "round trip of 0x" << h << " differs from F16C's";
  }
  EXPECT_EQ(n_bad, 0);
}

// A stride over all 2^32 float bit patterns (every sign, exponent and a spread of mantissas).
TEST(Fp16, StrideOverAllFloatsMatchesHardware) {
  REQUIRE_F16C();
  HalfChecker check;
  for (uint64_t u = 0; u < (uint64_t(1) << 32); u += 211) check.add(uint32_t(u));
  check.flush();
  EXPECT_GT(check.n_checked, 20'000'000u);
  EXPECT_EQ(check.n_bad, 0u);
}

// Floats right at and around every rounding boundary: for each non-negative finite half, the float
// halfway to the next half and its neighbours, plus the exact value and random low bits.
TEST(Fp16, RoundingBoundariesMatchHardware) {
  REQUIRE_F16C();
  HalfChecker check;
  uint64_t lcg = 12345;
  for (uint32_t h = 0; h < 0x7c00; ++h) {
    const float lo_value = fp16_to_fp32(uint16_t(h));
    const float hi_value = h == 0x7bff ? 65536.0f : fp16_to_fp32(uint16_t(h + 1));
    const uint32_t lo = fp32_to_bits(lo_value);
    const uint32_t hi = fp32_to_bits(hi_value);
    // The exact midpoint: two adjacent halves differ in 11 significant bits, so it is a float.
    const uint32_t mid = fp32_to_bits(float((double(lo_value) + double(hi_value)) / 2));
    for (int d = -3; d <= 3; ++d)
      for (uint32_t sign : {0u, 0x80000000u}) {
        check.add(sign | (mid + uint32_t(d)));
        check.add(sign | (lo + uint32_t(d + 3)));
      }
    for (int k = 0; k < 4; ++k) {
      lcg = lcg * 6364136223846793005ull + 1442695040888963407ull;
      check.add(lo + uint32_t((lcg >> 33) % (hi - lo)));
    }
  }
  check.flush();
  EXPECT_GT(check.n_checked, 1'000'000u);
  EXPECT_EQ(check.n_bad, 0u);
}

// Exhaustive over the regions where the special cases live.
TEST(Fp16, SpecialRegionsMatchHardware) {
  REQUIRE_F16C();
  HalfChecker check;
  for (uint32_t sign : {0u, 0x80000000u}) {
    // Around the overflow threshold: 65504 (0x477fe000), 65520 (0x477ff000), 65536 (0x47800000).
    for (uint32_t u = 0x477f0000u; u < 0x47810000u; ++u) check.add(sign | u);
    // Float subnormals, then the half-subnormal range up to 2^-13 (every 7th pattern: ~17M).
    for (uint32_t u = 0; u < 0x39000000u; u += (u < 0x32000000u ? 4099 : 7)) check.add(sign | u);
    // Infinity and NaNs: every 7th payload, plus the ones with only low bits set.
    for (uint32_t u = 0x7f800000u; u <= 0x7fffffffu && u >= 0x7f800000u; u += 7) check.add(sign | u);
    for (uint32_t m = 0; m < 0x4000; ++m) check.add(sign | 0x7f800000u | m);
    // Large finite floats, beyond every half.
    for (uint32_t u = 0x47800000u; u < 0x7f800000u; u += 65537) check.add(sign | u);
  }
  check.flush();
  EXPECT_EQ(check.n_bad, 0u);
}

TEST(Fp16, RandomFloatsMatchHardware) {
  REQUIRE_F16C();
  HalfChecker check;
  uint64_t s = 0x9e3779b97f4a7c15ull;
  for (int i = 0; i < 4'000'000; ++i) {
    s ^= s << 13, s ^= s >> 7, s ^= s << 17;
    check.add(uint32_t(s >> 16));
  }
  check.flush();
  EXPECT_EQ(check.n_bad, 0u);
}

// ---- bf16 ----

TEST(Fp16Bf16, KnownValues) {
  EXPECT_EQ(fp32_to_bf16(1.0f), 0x3f80);
  EXPECT_EQ(fp32_to_bf16(-1.0f), 0xbf80);
  EXPECT_EQ(fp32_to_bf16(fp32_from_bits(0x3f808000u)), 0x3f80);  // tie, even stays
  EXPECT_EQ(fp32_to_bf16(fp32_from_bits(0x3f818000u)), 0x3f82);  // tie, odd rounds up
  EXPECT_EQ(fp32_to_bf16(fp32_from_bits(0x3f808001u)), 0x3f81);
  EXPECT_EQ(fp32_to_bf16(fp32_from_bits(0x7f7fffffu)), 0x7f80);  // FLT_MAX rounds to infinity
  EXPECT_EQ(fp32_to_bf16(fp32_from_bits(0x7f800001u)), 0x7fc0);  // signalling NaN made quiet
  EXPECT_EQ(bf16_to_fp32(0x4049), 3.140625f);
}

TEST(Fp16Bf16, AllBf16ValuesExactAndRoundTrip) {
  for (uint32_t h = 0; h < 65536; ++h) {
    const float f = bf16_to_fp32(uint16_t(h));
    ASSERT_EQ(fp32_to_bits(f), h << 16) << "bf16 0x" << std::hex << h;
    const bool is_nan = (h & 0x7f80) == 0x7f80 && (h & 0x7f) != 0;
    ASSERT_EQ(fp32_to_bf16(f), is_nan ? uint16_t(h | 0x40) : uint16_t(h)) << "bf16 0x" << std::hex << h;
  }
}

// All 2^32 float patterns against the reference, in blocks of 2^16 (loops the compiler vectorizes).
TEST(Fp16Bf16, AllFloatsMatchReference) {
  std::vector<uint16_t> ours(65536), ref(65536);
  int n_bad = 0;
  for (uint32_t hi = 0; hi < 65536; ++hi) {
    for (uint32_t lo = 0; lo < 65536; ++lo) ours[lo] = fp32_to_bf16(fp32_from_bits(hi << 16 | lo));
    for (uint32_t lo = 0; lo < 65536; ++lo) ref[lo] = reference_bf16(hi << 16 | lo);
    if (ours == ref) continue;
    for (uint32_t lo = 0; lo < 65536; ++lo)
      if (ours[lo] != ref[lo] && ++n_bad <= 10)
        ADD_FAILURE() << std::hex << "fp32_to_bf16(bits 0x" << (hi << 16 | lo) << ") = 0x" << ours[lo]
                      << ", reference 0x" << ref[lo];
  }
  EXPECT_EQ(n_bad, 0);
}

// vcvtneps2bf16 flushes float subnormals to (signed) zero; ours, like ggml's, rounds them. Every
// other pattern must agree bit for bit.
TEST(Fp16Bf16, StrideMatchesAvx512Bf16) {
  if (!have_avx512_bf16()) GTEST_SKIP() << "this CPU lacks AVX512_BF16: nothing to compare against";
  size_t n_checked = 0, n_bad = 0, n_flushed = 0;
  uint32_t in[4];
  uint16_t hw[4];
  auto run = [&](uint32_t first, uint64_t end, uint32_t stride) {
    int k = 0;
    for (uint64_t u = first; u < end; u += stride) {
      in[k++] = uint32_t(u);
      if (k < 4 && u + stride < end) continue;
      hw_fp32_to_bf16_x4(in, hw);
      for (int i = 0; i < k; ++i) {
        ++n_checked;
        if (is_fp32_subnormal(in[i])) {
          n_flushed += hw[i] == uint16_t((in[i] >> 16) & 0x8000);
          continue;
        }
        const uint16_t ours = fp32_to_bf16(fp32_from_bits(in[i]));
        if (ours != hw[i] && ++n_bad <= 10)
          ADD_FAILURE() << std::hex << "fp32_to_bf16(bits 0x" << in[i] << ") = 0x" << ours
                        << ", AVX512_BF16 gives 0x" << hw[i];
      }
      k = 0;
    }
  };
  run(0, uint64_t(1) << 32, 97);               // ~44M patterns
  run(0x3f800000u, 0x3f800000u + (1u << 20), 1);  // every pattern around 1.0, all ties included
  run(0x7f7f0000u, 0x80000000ull, 1);          // FLT_MAX, infinity and every NaN near them
  run(0xff7f0000u, uint64_t(1) << 32, 1);
  EXPECT_GT(n_checked, 40'000'000u);
  EXPECT_GT(n_flushed, 0u);
  EXPECT_EQ(n_bad, 0u);
}

}  // namespace

#pragma once
// Explicit, seeded randomness: xoshiro256** seeded through splitmix64. Every consumer gets an Rng
// value passed in; there is no global generator. The same seed gives the same stream on every
// platform (no std:: distributions, whose outputs are implementation-defined).
#include <cmath>
#include <cstdint>

namespace ponder {

inline uint64_t splitmix64(uint64_t& state) {
  uint64_t z = (state += 0x9e3779b97f4a7c15ull);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  return z ^ (z >> 31);
}

class Rng {
 public:
  explicit Rng(uint64_t seed = 0) {
    for (uint64_t& w : s_) w = splitmix64(seed);
  }
  // An independent stream for (seed, index): e.g. path i of a request with seed s.
  static Rng derive(uint64_t seed, uint64_t index) {
    uint64_t mix = seed ^ (0xd1b54a32d192ed03ull * (index + 1));
    return Rng(splitmix64(mix));
  }

  uint64_t next_u64() {
    const uint64_t result = rotl(s_[1] * 5, 7) * 9;
    const uint64_t t = s_[1] << 17;
    s_[2] ^= s_[0];
    s_[3] ^= s_[1];
    s_[1] ^= s_[2];
    s_[0] ^= s_[3];
    s_[2] ^= t;
    s_[3] = rotl(s_[3], 45);
    return result;
  }
  // Uniform in [0, 1) with 53 random bits.
  double uniform() { return double(next_u64() >> 11) * 0x1.0p-53; }
  // Uniform integer in [0, n).
  uint64_t below(uint64_t n) { return n == 0 ? 0 : uint64_t(uniform() * double(n)) % n; }
  // Standard normal (Box-Muller; one draw per call, the pair's second value is discarded).
  double normal() {
    double u1 = uniform();
    while (u1 <= 0.0) u1 = uniform();
    const double u2 = uniform();
    return std::sqrt(-2.0 * std::log(u1)) * std::cos(6.283185307179586 * u2);
  }

  // The whole state, for checkpoints.
  const uint64_t* state() const { return s_; }
  void set_state(const uint64_t s[4]) {
    for (int i = 0; i < 4; ++i) s_[i] = s[i];
  }

 private:
  static uint64_t rotl(uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }
  uint64_t s_[4];
};

}  // namespace ponder

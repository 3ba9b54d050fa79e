// sgemm A/B in one process: two builds of src/kernels/gemm.cpp (namespaces ponder_base and
// ponder_work, made by bench/sgemm_ab.sh) called alternately on the training shapes, so both see the
// same machine state; on shared machines whose speed drifts by 10-30% from minute to minute this
// resolves differences of a few percent that separate runs of two binaries cannot. Prints the min
// and median GFLOP/s of each and their ratio per shape, and whether the two gave the same bits.
// Operands cycle through copies (about 64 MB in all) so that they come from memory, as in a step.
#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <random>
#include <vector>

namespace ponder_base {
void sgemm(bool, bool, int64_t, int64_t, int64_t, float, const float*, int64_t, const float*, int64_t, float, float*,
           int64_t);
}
namespace ponder_work {
void sgemm(bool, bool, int64_t, int64_t, int64_t, float, const float*, int64_t, const float*, int64_t, float, float*,
           int64_t);
}

namespace {

struct Shape {
  bool ta, tb;
  int64_t M, N, K;
  float beta;
  const char* what;
};

// The products of a training step: Y = X W^T (tb), dX = dY W, dW += dY^T X (ta), for the 5m preset
// (4096 tokens, dim 256, FFN 768) and the Qwen2-0.5B shape (512 tokens, dim 896, FFN 4864).
const Shape kShapes[] = {
    {false, true, 4096, 768, 256, 0, "5m fwd gate/up"},   {false, true, 4096, 256, 768, 0, "5m fwd down"},
    {false, false, 4096, 256, 768, 0, "5m dX gate/up"},   {false, false, 4096, 768, 256, 0, "5m dX down"},
    {true, false, 768, 256, 4096, 1, "5m dW gate/up"},    {true, false, 256, 768, 4096, 1, "5m dW down"},
    {true, false, 256, 256, 4096, 1, "5m dW q/o"},        {true, false, 128, 256, 4096, 1, "5m dW k/v"},
    {false, true, 512, 896, 896, 0, "0.5B fwd q/o"},      {false, true, 512, 4864, 896, 0, "0.5B fwd gate/up"},
    {false, true, 512, 896, 4864, 0, "0.5B fwd down"},    {false, false, 512, 896, 4864, 1, "0.5B dX gate/up"},
    {false, false, 512, 4864, 896, 0, "0.5B dX down"},    {true, false, 4864, 896, 512, 1, "0.5B dW gate/up"},
    {true, false, 896, 4864, 512, 1, "0.5B dW down"},     {false, true, 512, 16, 896, 0, "LoRA x A^T"},
    {false, true, 512, 4864, 16, 1, "LoRA + u B^T"},      {true, false, 16, 896, 512, 1, "LoRA dA"},
    {true, false, 16, 4864, 512, 1, "LoRA dA down"},      {true, false, 4864, 16, 512, 1, "LoRA dB"},
    {false, false, 512, 16, 4864, 0, "LoRA du"},
};

double seconds_since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

}  // namespace

int main(int argc, char** argv) {
  const int reps = argc > 1 ? std::atoi(argv[1]) : 10;
  if (reps < 1) {
    std::fprintf(stderr, "usage: sgemm_ab [REPS >= 1]\n");
    return 2;
  }
  std::mt19937 rng(1);
  std::uniform_real_distribution<float> u(-1.0f, 1.0f);
  std::printf("%-18s %22s %22s %14s %5s\n", "shape", "base min / median", "work min / median", "work/base", "bits");
  bool all_same = true;
  for (const Shape& s : kShapes) {
    const size_t a_n = size_t(s.M * s.K), b_n = size_t(s.K * s.N), c_n = size_t(s.M * s.N);
    const int copies = int(std::clamp<size_t>((64u << 20) / (4 * (a_n + b_n)), 1, 8));
    std::vector<std::vector<float>> A(copies, std::vector<float>(a_n)), B(copies, std::vector<float>(b_n));
    for (auto* ops : {&A, &B})
      for (auto& v : *ops)
        for (float& x : v) x = u(rng);
    std::vector<float> C0(c_n);
    for (float& x : C0) x = u(rng);
    std::vector<float> C[2] = {C0, C0};
    const int64_t lda = s.ta ? s.M : s.K, ldb = s.tb ? s.K : s.N;
    std::vector<double> t[2];
    for (int r = 0; r < reps; ++r)
      for (int v = 0; v < 2; ++v) {
        const auto t0 = std::chrono::steady_clock::now();
        for (int c = 0; c < copies; ++c)
          (v ? ponder_work::sgemm : ponder_base::sgemm)(s.ta, s.tb, s.M, s.N, s.K, 1.0f, A[size_t(c)].data(), lda,
                                                       B[size_t(c)].data(), ldb, s.beta, C[v].data(), s.N);
        t[v].push_back(seconds_since(t0) / copies);
      }
    const bool same = std::memcmp(C[0].data(), C[1].data(), c_n * sizeof(float)) == 0;
    all_same = all_same && same;
    for (auto& x : t) std::sort(x.begin(), x.end());
    const double gf = 2.0 * double(s.M) * double(s.N) * double(s.K) / 1e9;
    const size_t mid = size_t(reps / 2);
    std::printf("%-18s %10.1f / %9.1f %10.1f / %9.1f %6.2f / %5.2f %5s\n", s.what, gf / t[0][0], gf / t[0][mid],
                gf / t[1][0], gf / t[1][mid], t[0][0] / t[1][0], t[0][mid] / t[1][mid], same ? "same" : "DIFF");
  }
  std::printf("GFLOP/s, min and median of %d calls each, alternating; work/base > 1: the working tree is faster\n",
              reps);
  return all_same ? 0 : 1;
}

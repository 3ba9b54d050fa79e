#include "train/memory.h"

#include <algorithm>
#include <cstdio>
#include <fstream>
#include <sstream>
#include <omp.h>
#include <unistd.h>

#include "core/error.h"
#include "train/dist.h"
#include "train/forward_train.h"
#include "train/frozen_head.h"
#include "train/params.h"

namespace ponder {

namespace {

constexpr double kGiB = 1024.0 * 1024.0 * 1024.0;

// The first number in a file ("max" or a missing file: -1).
double read_number(const std::string& path) {
  std::ifstream in(path);
  double v = -1;
  if (in && (in >> v)) return v;
  return -1;
}

double meminfo_available() {
  std::ifstream in("/proc/meminfo");
  for (std::string line; std::getline(in, line);) {
    if (line.rfind("MemAvailable:", 0) != 0) continue;
    std::istringstream s(line.substr(13));
    double kb = -1;
    if (s >> kb) return kb * 1024.0;
  }
  const long pages = sysconf(_SC_AVPHYS_PAGES), page = sysconf(_SC_PAGESIZE);
  return pages > 0 && page > 0 ? double(pages) * double(page) : -1;
}

std::string gib(double bytes) {
  char buf[32];
  std::snprintf(buf, sizeof buf, bytes < 0.1 * kGiB ? "%.2f GiB" : "%.1f GiB", bytes / kGiB);
  return buf;
}

}  // namespace

TrainStepMemory training_step_memory(const TrainConfig& c, int64_t rows, int64_t tokens_per_row,
                                     const LoraConfig& lora, double frozen_bytes) {
  const double B = double(rows), T = double(tokens_per_row), N = B * T;
  const double C = c.dim, F = c.ffn, V = c.vocab, L = c.n_layers, H = c.n_heads, D = c.head_dim();
  const double qd = c.q_dim(), kvd = c.kv_dim();
  const double P = double(ParamLayout::for_config(c).total);
  // forward_train, per layer: x_in, xn1, x_mid, xn2 (N, C); rstd1, rstd2 (N); q, att (N, H*D);
  // k, v (N, Hkv*D); gate, up, h (N, F); probs (B, H, T, T) when kept (else backward recomputes them).
  const double probs = keep_attention_probs(rows, c.n_heads, tokens_per_row, c.n_layers) ? B * H * T * T : 0;
  const double per_layer = 4 * N * C + 2 * N + 2 * N * qd + 2 * N * kvd + probs + 3 * N * F;
  // x_final, xnf (N, C); rstdf (N); logits (N, V); rope cos and sin (T, D/2); one layer's gate^T
  // and up^T (F, N) when ffn_feature_major.
  const double top = 2 * N * C + N + N * V + T * D + (ffn_feature_major(int64_t(N), c.ffn) ? 2 * N * F : 0);
  // backward_train scratch: dx, dxn (N, C); dbig (N, F); dbig2 (N, 2F); datt, dq (N, H*D);
  // dk, dv (N, Hkv*D). Then logp and dlogp (N).
  const double scratch = 2 * N * C + 3 * N * F + 2 * N * qd + 2 * N * kvd + 2 * N;
  const double f = sizeof(float);
  if (lora.enabled()) {  // adapters: A and B of each target, x A^T per target and its gradient
    const double A = double(LoraAdapters(c, lora).layout.total), r = lora.rank;
    const double lora_acts = L * double(lora.targets.size()) * N * r + N * r;
    // A frozen base: its norms and biases in f32, the matrices as stored plus the largest block
    // matrix read as f32 at once.
    const double piece = std::max(qd * C, F * C);
    const double base = frozen_bytes < 0 ? P * f
                                         : double(ParamLayout::for_config(c, true).total) * f + frozen_bytes + piece * f;
    // The head gets no gradient: train/frozen_head.h's scratch instead of the (N, V) logits (its
    // per-thread piece of a frozen head counted even when an F32 head is read in place).
    const double head =
        frozen_head_scratch_floats(rows * tokens_per_row, c.dim, omp_get_max_threads(), frozen_bytes >= 0) - N * V;
    return {.params = base + A * f, .grads = A * f, .optimizer = 2 * A * f,
            .activations = (L * per_layer + top + head + scratch + lora_acts) * f};
  }
  return {.params = P * f, .grads = P * f, .optimizer = 2 * P * f, .activations = (L * per_layer + top + scratch) * f};
}

double available_memory_bytes() {
  double avail = meminfo_available();
  // cgroup v2, then v1: the limit minus what the group already uses.
  for (const auto& [limit_path, usage_path] :
       {std::pair{"/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory.current"},
        std::pair{"/sys/fs/cgroup/memory/memory.limit_in_bytes", "/sys/fs/cgroup/memory/memory.usage_in_bytes"}}) {
    const double limit = read_number(limit_path), usage = read_number(usage_path);
    if (limit > 0 && usage >= 0 && limit < 1e18) {
      const double left = std::max(0.0, limit - usage);
      avail = avail < 0 ? left : std::min(avail, left);
      break;
    }
  }
  return avail;
}

void check_training_memory(const TrainStepMemory& one_rank, const std::string& one_rank_flags, double available) {
  if (available < 0) return;  // unknown: nothing to compare with
  // The ranks of a data-parallel run on this machine share its memory.
  const int k = dist().local_size;
  const double f = double(k);
  const TrainStepMemory need{.params = one_rank.params * f, .grads = one_rank.grads * f,
                             .optimizer = one_rank.optimizer * f, .activations = one_rank.activations * f,
                             .other = one_rank.other * f};
  const std::string flags = k > 1 ? one_rank_flags + " on " + std::to_string(k) + " ranks of this machine" : one_rank_flags;
  if (need.total() <= 0.9 * available) return;
  std::string rest = "parameters, gradients and AdamW " + gib(need.params + need.grads + need.optimizer);
  if (need.other > 0) rest += "; other " + gib(need.other);
  throw InvalidArgument(flags + " need " + gib(need.total()) + " for a training step (activations " +
                        gib(need.activations) + "; " + rest + "), more than 90% of the " + gib(available) +
                        " this machine has available; lower them");
}

}  // namespace ponder

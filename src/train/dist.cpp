#include "train/dist.h"

#include <algorithm>
#include <chrono>
#include <climits>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <omp.h>
#include <thread>
#include <unistd.h>

#include "core/error.h"

#ifdef PONDER_MPI
#include <mpi.h>
#endif

namespace ponder {

namespace {

DistInfo g_info;
DistCounters g_counters;
bool g_mpi = false;  // MPI_Init was called
char g_term_message[256];

using Clock = std::chrono::steady_clock;

// Times a collective into g_counters.
struct Timed {
  Clock::time_point t0 = Clock::now();
  explicit Timed(double bytes) { g_counters.bytes += bytes; }
  ~Timed() { g_counters.seconds += std::chrono::duration<double>(Clock::now() - t0).count(); }
};

// The MPI runtime ends the other ranks with SIGTERM when one dies: say so before going.
void on_sigterm(int) {
  const ssize_t ignored = write(STDERR_FILENO, g_term_message, std::strlen(g_term_message));
  (void)ignored;
  _exit(143);
}

bool launched_by_mpirun() {
  return std::getenv("OMPI_COMM_WORLD_SIZE") != nullptr || std::getenv("PMIX_RANK") != nullptr ||
         std::getenv("PMI_RANK") != nullptr;
}

// Parameters [begin(c), begin(c + 1)) are owned by rank c.
size_t slice_begin(size_t n, int c, int size) { return n * size_t(c) / size_t(size); }

int mpi_count(size_t n) {
  if (n > size_t(INT_MAX))
    throw InvalidArgument("a gradient slice of " + std::to_string(n) + " floats is more than MPI's count limit (" +
                          std::to_string(INT_MAX) + "); run more ranks");
  return int(n);
}

}  // namespace

bool dist_built_with_mpi() {
#ifdef PONDER_MPI
  return true;
#else
  return false;
#endif
}

void dist_init(int* argc, char*** argv) {
  if (!launched_by_mpirun()) return;
#ifdef PONDER_MPI
  MPI_Init(argc, argv);
  g_mpi = true;
  MPI_Comm_rank(MPI_COMM_WORLD, &g_info.rank);
  MPI_Comm_size(MPI_COMM_WORLD, &g_info.size);
  MPI_Comm local;
  MPI_Comm_split_type(MPI_COMM_WORLD, MPI_COMM_TYPE_SHARED, g_info.rank, MPI_INFO_NULL, &local);
  MPI_Comm_size(local, &g_info.local_size);
  MPI_Comm_free(&local);
  if (g_info.size > 1) {
    std::snprintf(g_term_message, sizeof g_term_message,
                  "ponder: rank %d of %d: ended by the MPI runtime (another rank of the job failed, or the job was "
                  "cancelled); rerun the same command with --resume to continue from the last checkpoint\n",
                  g_info.rank, g_info.size);
    std::signal(SIGTERM, on_sigterm);
  }
  // The ranks on this machine share its cores (-t overrides).
  if (g_info.local_size > 1)
    omp_set_num_threads(std::max(1, int(std::thread::hardware_concurrency()) / g_info.local_size));
#else
  const char* size = std::getenv("OMPI_COMM_WORLD_SIZE");
  if (size != nullptr && std::atoi(size) > 1)
    throw InvalidArgument("launched by mpirun with " + std::string(size) +
                          " ranks, but this ponder was built without MPI (install libopenmpi-dev and rebuild)");
#endif
}

void dist_finalize() {
#ifdef PONDER_MPI
  if (g_mpi) MPI_Finalize();
  g_mpi = false;
#endif
}

const DistInfo& dist() { return g_info; }

void dist_abort(int exit_code) {
  std::fflush(stdout);
  std::fflush(stderr);
#ifdef PONDER_MPI
  if (g_mpi && g_info.size > 1) MPI_Abort(MPI_COMM_WORLD, exit_code);
#endif
  std::exit(exit_code);
}

DistCounters dist_counters() { return g_counters; }

std::vector<std::string> dist_allgather(const std::string& mine) {
  if (g_info.size == 1) return {mine};
#ifdef PONDER_MPI
  const Timed timed(double(mine.size()) * double(g_info.size - 1));
  const int R = g_info.size;
  const int n = mpi_count(mine.size());
  std::vector<int> counts(static_cast<size_t>(R)), displs(static_cast<size_t>(R));
  MPI_Allgather(&n, 1, MPI_INT, counts.data(), 1, MPI_INT, MPI_COMM_WORLD);
  size_t total = 0;
  for (int r = 0; r < R; ++r) displs[size_t(r)] = mpi_count(total), total += size_t(counts[size_t(r)]);
  std::string all(total, '\0');
  MPI_Allgatherv(mine.data(), n, MPI_BYTE, all.data(), counts.data(), displs.data(), MPI_BYTE, MPI_COMM_WORLD);
  std::vector<std::string> out;
  for (int r = 0; r < R; ++r) out.push_back(all.substr(size_t(displs[size_t(r)]), size_t(counts[size_t(r)])));
  return out;
#else
  return {mine};
#endif
}

double dist_max(double value) {
  if (g_info.size == 1) return value;
#ifdef PONDER_MPI
  const Timed timed(sizeof(double));
  double out = value;
  MPI_Allreduce(&value, &out, 1, MPI_DOUBLE, MPI_MAX, MPI_COMM_WORLD);
  return out;
#else
  return value;
#endif
}

void dist_collect(std::span<double> values) {
  if (g_info.size == 1 || values.empty()) return;
#ifdef PONDER_MPI
  const Timed timed(double(values.size_bytes()));
  MPI_Allreduce(MPI_IN_PLACE, values.data(), mpi_count(values.size()), MPI_DOUBLE, MPI_SUM, MPI_COMM_WORLD);
#endif
}

GradientSum::GradientSum(std::vector<float>& grads, size_t n_params, int64_t n_micro)
    : grads_(grads), n_(n_params), n_micro_(n_micro) {
  const int R = g_info.size;
  rounds_ = (n_micro + R - 1) / R;
  grads_.assign(n_, 0.0f);
  if (R > 1) {
    slice_.assign(slice_begin(n_, g_info.rank + 1, R) - slice_begin(n_, g_info.rank, R), 0.0f);
    received_.resize(slice_.size() * size_t(R));
  }
}

double GradientSum::extra_bytes(double grad_bytes, int64_t n_micro) {
  const int R = g_info.size;
  if (R == 1) return n_micro > 1 ? grad_bytes : 0.0;
  return 2 * grad_bytes + grad_bytes / R;
}

int64_t GradientSum::micro(int64_t round) const {
  const int64_t a = round * g_info.size + g_info.rank;
  return a < n_micro_ ? a : -1;
}

std::vector<float>& GradientSum::buffer(int64_t round) {
  if (g_info.size == 1 && round == 0) return grads_;  // zeroed by the constructor: g_0 = the running sum
  scratch_.assign(n_, 0.0f);
  return scratch_;
}

void GradientSum::reduce(int64_t round) {
  const int R = g_info.size;
  if (R == 1) {
    if (round == 0) return;
    for (size_t i = 0; i < n_; ++i) grads_[i] += scratch_[i];
    return;
  }
#ifdef PONDER_MPI
  const bool mine = micro(round) >= 0;
  const size_t len = slice_.size();
  std::vector<int> send_counts(static_cast<size_t>(R)), send_displs(static_cast<size_t>(R)), recv_counts(static_cast<size_t>(R)), recv_displs(static_cast<size_t>(R));
  double sent = 0;
  for (int c = 0; c < R; ++c) {
    const size_t b = slice_begin(n_, c, R), e = slice_begin(n_, c + 1, R);
    send_counts[size_t(c)] = mine ? mpi_count(e - b) : 0;
    send_displs[size_t(c)] = mpi_count(b);
    if (c != g_info.rank) sent += double(send_counts[size_t(c)]) * sizeof(float);
    const bool has = round * R + c < n_micro_;  // rank c computed a micro-batch this round
    recv_counts[size_t(c)] = has ? mpi_count(len) : 0;
    recv_displs[size_t(c)] = mpi_count(size_t(c) * len);
  }
  {
    const Timed timed(sent);
    MPI_Alltoallv(scratch_.data(), send_counts.data(), send_displs.data(), MPI_FLOAT, received_.data(),
                  recv_counts.data(), recv_displs.data(), MPI_FLOAT, MPI_COMM_WORLD);
  }
  // In rank order = micro-batch order; the very first gradient starts the sum (as grads_ does on
  // one process: it is g_0 itself, not 0 + g_0).
  for (int c = 0; c < R; ++c) {
    if (round * R + c >= n_micro_) break;
    const float* g = received_.data() + size_t(c) * len;
    if (round == 0 && c == 0) std::copy(g, g + len, slice_.begin());
    else for (size_t i = 0; i < len; ++i) slice_[i] += g[i];
  }
#endif
}

void GradientSum::finish() {
  const int R = g_info.size;
  if (R == 1) return;
#ifdef PONDER_MPI
  std::vector<int> counts(static_cast<size_t>(R)), displs(static_cast<size_t>(R));
  for (int c = 0; c < R; ++c) {
    counts[size_t(c)] = mpi_count(slice_begin(n_, c + 1, R) - slice_begin(n_, c, R));
    displs[size_t(c)] = mpi_count(slice_begin(n_, c, R));
  }
  const Timed timed(double(slice_.size()) * sizeof(float) * double(R - 1));
  MPI_Allgatherv(slice_.data(), mpi_count(slice_.size()), MPI_FLOAT, grads_.data(), counts.data(), displs.data(),
                 MPI_FLOAT, MPI_COMM_WORLD);
#endif
}

}  // namespace ponder

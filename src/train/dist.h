#pragma once
// The processes of a data-parallel training run. Without MPI (or without mpirun) there is one, and
// every call here is the identity; under `mpirun -np R ponder train ...` there are R (MPI, when
// ponder was built with it). Every collective is deterministic: its result does not depend on
// timing, on the number of ranks, or on which rank computed what, so R ranks train the model one
// process trains, bit for bit.
//
// The step's gradient is the sum of its micro-batch gradients g_0 .. g_{M-1} (each computed from
// zero) in one order, ((g_0 + g_1) + g_2) + ..., whatever R:
//   micro-batch a is computed by rank a % R, in round a / R;
//   after each round every rank sends each owner its slice of the round's gradients (MPI_Alltoallv;
//   owner c holds parameters [c P/R, (c+1) P/R)), and the owner adds them in rank order, i.e. in
//   micro-batch order; after the last round the owners' slices are gathered (MPI_Allgatherv).
// With one micro-batch per rank (M = R) each rank sends and receives 2 (R-1)/R of the gradient per
// step, as a ring all-reduce does; each further round adds (R-1)/R.
#include <cstdint>
#include <span>
#include <string>
#include <vector>

namespace ponder {

struct DistInfo {
  int rank = 0;
  int size = 1;        // ranks in the job
  int local_size = 1;  // ranks on this machine (they share its cores and memory)
  bool root() const { return rank == 0; }
};

// Starts MPI when this process was launched by mpirun and ponder was built with MPI (a no-op
// otherwise); with several ranks on a machine, each gets its share of the cores as its OpenMP
// threads, and a SIGTERM from the MPI runtime (another rank died) ends this rank with a message.
void dist_init(int* argc, char*** argv);
void dist_finalize();
const DistInfo& dist();
bool dist_built_with_mpi();
// Ends every rank of the job with this exit code (MPI_Abort); std::exit without MPI.
[[noreturn]] void dist_abort(int exit_code);

// What this process's collectives cost so far (a step's share: the difference of two readings).
struct DistCounters {
  double seconds = 0;  // wall time inside collectives (waiting for other ranks included)
  double bytes = 0;    // bytes this rank sent
};
DistCounters dist_counters();

// Every rank's bytes, in rank order.
std::vector<std::string> dist_allgather(const std::string& mine);
// The largest value over the ranks.
double dist_max(double value);
// Element i of `values` is set on one rank (its owner) and 0 on the others: afterwards every rank
// holds the owners' values (a sum with zeros: exact, whatever the order).
void dist_collect(std::span<double> values);

// The sum of a step's micro-batch gradients (see the top of this file). Usage, on every rank:
//   GradientSum sum(grads, n_params, n_micro);
//   for (int64_t r = 0; r < sum.rounds(); ++r) {
//     if (const int64_t a = sum.micro(r); a >= 0) backward of micro-batch a into sum.buffer(r);
//     sum.reduce(r);
//   }
//   sum.finish();  // grads: the total, on every rank
class GradientSum {
 public:
  GradientSum(std::vector<float>& grads, size_t n_params, int64_t n_micro);
  int64_t rounds() const { return rounds_; }
  // The micro-batch this rank computes in round r, -1 when it has none.
  int64_t micro(int64_t round) const;
  // Where that micro-batch's gradient goes: zeroed, the parameters' layout.
  std::vector<float>& buffer(int64_t round);
  void reduce(int64_t round);  // collective: every rank, every round
  void finish();               // collective
  // Bytes a GradientSum holds besides the gradient (of grad_bytes) for a step of n_micro
  // micro-batches: one micro-batch's gradient after the first (one process), or with R ranks that
  // buffer, a round's slices from every rank and this rank's running slice.
  static double extra_bytes(double grad_bytes, int64_t n_micro);

 private:
  std::vector<float>& grads_;
  std::vector<float> scratch_;  // a micro-batch's gradient (rounds after the first, or R > 1)
  std::vector<float> slice_;    // R > 1: the running sum of the parameters this rank owns
  std::vector<float> received_; // R > 1: a round's slices from every rank
  size_t n_;
  int64_t n_micro_, rounds_;
};

}  // namespace ponder

#pragma once
// An exception must not leave an OpenMP region: the runtime would call std::terminate. A region
// whose body can throw (an allocation in a kernel's scratch buffer, say) runs the body through
// ParallelErrors::run, which keeps the first exception; after the region the caller rethrows it:
//
//   ParallelErrors errors;
//   #pragma omp parallel for
//   for (int64_t i = 0; i < n; ++i) errors.run([&] { work(i); });
//   errors.rethrow();
#include <exception>
#include <mutex>

namespace ponder {

class ParallelErrors {
 public:
  template <typename Fn>
  void run(Fn&& fn) noexcept {
    try {
      fn();
    } catch (...) {
      std::lock_guard<std::mutex> lock(mutex_);
      if (!first_) first_ = std::current_exception();
    }
  }
  // Rethrows the first exception a body threw, if any.
  void rethrow() const {
    if (first_) std::rethrow_exception(first_);
  }

 private:
  std::mutex mutex_;
  std::exception_ptr first_;
};

}  // namespace ponder

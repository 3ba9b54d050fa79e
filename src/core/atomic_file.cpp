#include "core/atomic_file.h"

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <fcntl.h>
#include <unistd.h>

#include "core/error.h"

namespace ponder {

namespace {
std::atomic<int64_t> g_fault_budget{-1};  // bytes left before the injected abort; -1: off

// How many of n bytes may be written before the injected abort (n when off).
size_t fault_allowance(size_t n) {
  const int64_t left = g_fault_budget.load();
  return left < 0 ? n : std::min(n, size_t(left));
}
}  // namespace

void abort_after_bytes(int64_t n) { g_fault_budget.store(n < 0 ? -1 : n); }

AtomicFile::AtomicFile(std::string path) : path_(std::move(path)), tmp_(path_ + ".tmp") {
  fd_ = ::open(tmp_.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
  if (fd_ < 0) throw FormatError(tmp_ + ": cannot create: " + std::strerror(errno));
}

AtomicFile::~AtomicFile() {
  if (fd_ >= 0) ::close(fd_);
  if (!committed_) ::unlink(tmp_.c_str());
}

void AtomicFile::write(const void* data, size_t n) {
  const auto* p = static_cast<const uint8_t*>(data);
  const size_t allowed = fault_allowance(n);
  const bool abort_after = allowed < n;
  if (g_fault_budget.load() >= 0) g_fault_budget -= int64_t(allowed);
  n = allowed;
  while (n > 0) {
    const ssize_t w = ::write(fd_, p, n);
    if (w < 0) {
      if (errno == EINTR) continue;
      throw FormatError(tmp_ + ": write failed: " + std::strerror(errno));
    }
    p += w;
    n -= size_t(w);
  }
  if (abort_after) std::abort();  // injected fault: the rest of this write never happens
}

void AtomicFile::commit() {
  if (g_fault_budget.load() == 0) std::abort();  // injected fault: written, not yet renamed
  if (::fsync(fd_) != 0) throw FormatError(tmp_ + ": fsync failed: " + std::strerror(errno));
  ::close(fd_);
  fd_ = -1;
  if (::rename(tmp_.c_str(), path_.c_str()) != 0)
    throw FormatError(path_ + ": cannot rename the temp file into place: " + std::strerror(errno));
  committed_ = true;
}

}  // namespace ponder

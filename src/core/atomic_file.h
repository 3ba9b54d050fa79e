#pragma once
// A file written atomically: bytes go to PATH.tmp, commit() fsyncs and renames it over PATH.
// Until commit() the old PATH is untouched; a writer that dies (or throws) leaves it intact.
//
// Fault injection for tests (`ponder train sft --abort-after-bytes N`): after
// abort_after_bytes(N), the process calls std::abort() once N bytes in all have gone through
// AtomicFile::write, in the middle of the write that crosses N (or in commit(), before the fsync
// and rename, when a write ended exactly at N). A deterministic stand-in for a kill mid-checkpoint.
#include <cstddef>
#include <cstdint>
#include <string>

namespace ponder {

void abort_after_bytes(int64_t n);  // n < 0: off (the default)

class AtomicFile {
 public:
  explicit AtomicFile(std::string path);  // throws FormatError when the temp file cannot be created
  ~AtomicFile();                          // removes the temp file unless committed
  AtomicFile(const AtomicFile&) = delete;
  AtomicFile& operator=(const AtomicFile&) = delete;

  void write(const void* data, size_t n);
  void commit();

 private:
  std::string path_, tmp_;
  int fd_ = -1;
  bool committed_ = false;
};

}  // namespace ponder

#pragma once
// A file written atomically: bytes go to PATH.tmp, commit() fsyncs and renames it over PATH.
// Until commit() the old PATH is untouched; a writer that dies (or throws) leaves it intact.
#include <cstddef>
#include <cstdint>
#include <string>

namespace ponder {

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

#pragma once
// A read-only memory map of a whole file. Model weights are read straight from the map.
#include <cstddef>
#include <cstdint>
#include <span>
#include <string>

namespace ponder {

class MappedFile {
 public:
  explicit MappedFile(const std::string& path);  // throws FormatError when the file cannot be opened
  ~MappedFile();
  MappedFile(const MappedFile&) = delete;
  MappedFile& operator=(const MappedFile&) = delete;

  std::span<const uint8_t> bytes() const { return {data_, size_}; }
  const std::string& path() const { return path_; }

 private:
  std::string path_;
  const uint8_t* data_ = nullptr;
  size_t size_ = 0;
};

}  // namespace ponder

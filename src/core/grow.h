#pragma once
// Scratch buffers that grow to the largest size asked for and never shrink, so a loop that calls
// a kernel with the same shapes allocates only on its first pass.
#include <cstddef>
#include <vector>

namespace ponder {

template <typename T>
T* sized(std::vector<T>& v, size_t n) {
  if (v.size() < n) v.resize(n);
  return v.data();
}

}  // namespace ponder

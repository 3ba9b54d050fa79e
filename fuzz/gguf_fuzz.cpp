// libFuzzer target for the GGUF reader: any bytes either parse or throw ponder::FormatError. Every
// metadata value and every byte of every tensor is read, so ASan reports a tensor that points
// outside the input and UBSan any overflow on the way. Built and run by scripts/fuzz.sh.
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <type_traits>
#include <variant>

#include "core/error.h"
#include "formats/gguf.h"

namespace {

volatile uint64_t g_sink;  // keeps the reads below from being optimized away

[[noreturn]] void broken(const char* what) {
  std::fprintf(stderr, "gguf_fuzz: parse_gguf returned a file that breaks an invariant: %s\n", what);
  std::abort();
}

uint64_t touch(const ponder::GgufValue& v) {
  return std::visit([](const auto& x) -> uint64_t {
    using T = std::decay_t<decltype(x)>;
    if constexpr (std::is_same_v<T, std::string>) {
      uint64_t h = x.size();
      for (char c : x) h = h * 31 + uint8_t(c);
      return h;
    } else if constexpr (std::is_same_v<T, ponder::GgufArray>) {
      uint64_t h = uint32_t(x.type);
      for (const ponder::GgufValue& item : x.items) {
        if (item.type() != x.type) broken("an array item's type differs from the array's element type");
        h = h * 31 + touch(item);
      }
      return h;
    } else {
      uint64_t h = 0;
      std::memcpy(&h, &x, sizeof(T));
      return h;
    }
  }, v.v);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  try {
    const ponder::GgufFile f = ponder::parse_gguf({data, size}, "fuzz.gguf");
    uint64_t h = f.version + f.alignment;
    if (f.alignment == 0 || (f.alignment & (f.alignment - 1)) != 0) broken("alignment is not a power of two");
    for (const auto& [key, value] : f.metadata) {
      if (f.find(key) != &value) broken("find() does not return the key's own value");
      h = h * 31 + key.size() + touch(value);
    }
    for (const ponder::GgufTensor& t : f.tensors) {
      if (f.find_tensor(t.name) != &t) broken("find_tensor() does not return the tensor itself");
      if (t.ne.empty() || t.ne.size() > 4 || t.n_elements() <= 0) broken("impossible shape");
      if (t.offset % f.alignment != 0) broken("misaligned tensor");
      if (t.n_bytes != uint64_t(ponder::ggml_row_size(t.type, t.ne[0]) * (t.n_elements() / t.ne[0])))
        broken("n_bytes does not match the shape and type");
      if (t.data < data || t.n_bytes > size || t.data > data + (size - t.n_bytes)) broken("tensor outside the input");
      for (uint8_t b : t.bytes()) h += b;  // ASan checks each of these reads
    }
    // The typed getters on whatever keys are there: they either answer or throw FormatError.
    for (const auto& [key, value] : f.metadata) {
      try { h += uint64_t(f.get_int(key)); } catch (const ponder::FormatError&) {}
      try {
        const double x = f.get_float(key);  // bits, not a cast: NaN and 1e300 are valid values
        uint64_t bits;
        std::memcpy(&bits, &x, 8);
        h += bits;
      } catch (const ponder::FormatError&) {}
      try { h += f.get_string(key).size(); } catch (const ponder::FormatError&) {}
      try { h += f.get_bool(key, false); } catch (const ponder::FormatError&) {}
    }
    g_sink = h;
  } catch (const ponder::FormatError&) {
    // Malformed input, reported the way it should be.
  }
  return 0;
}

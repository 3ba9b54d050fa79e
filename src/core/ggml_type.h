#pragma once
// Tensor element types as GGUF numbers them (ggml's enum). ponder computes with F32, F16, BF16 and
// Q8_0; the other names exist only so an error can say what a file holds.
#include <cstdint>
#include <string>

namespace ponder {

enum class GgmlType : uint32_t {
  F32 = 0,
  F16 = 1,
  Q8_0 = 8,
  BF16 = 30,
};

// Q8_0: blocks of 32 weights, one fp16 scale then 32 int8 values (34 bytes).
constexpr int kQ8Block = 32;
struct BlockQ8_0 {
  uint16_t d;  // fp16 scale
  int8_t qs[kQ8Block];
};
static_assert(sizeof(BlockQ8_0) == 34);

bool is_supported(GgmlType t);
std::string ggml_type_name(uint32_t t);   // "Q4_K" etc. for every ggml type number, "type N" if unknown
int64_t ggml_block_size(GgmlType t);      // elements per block
int64_t ggml_type_size(GgmlType t);       // bytes per block
// Bytes of a row of n elements; n must be a multiple of the block size.
inline int64_t ggml_row_size(GgmlType t, int64_t n) { return n / ggml_block_size(t) * ggml_type_size(t); }

}  // namespace ponder

#pragma once
// Tensor element types as GGUF numbers them (ggml's enum), with each type's block size and bytes
// per block: the facts the GGUF reader needs to size a tensor. The block layouts and the
// arithmetic live in kernels/ (quant_blocks.h, quant.h).
#include <cstdint>
#include <string>

namespace ponder {

enum class GgmlType : uint32_t {
  F32 = 0,
  F16 = 1,
  Q4_0 = 2,
  Q4_1 = 3,
  Q5_0 = 6,
  Q5_1 = 7,
  Q8_0 = 8,
  Q8_1 = 9,    // activations only (the partner of Q4_1 and Q5_1)
  Q2_K = 10,
  Q3_K = 11,
  Q4_K = 12,
  Q5_K = 13,
  Q6_K = 14,
  Q8_K = 15,   // activations only (the partner of the k-quants and IQ4_XS)
  IQ4_NL = 20,
  IQ4_XS = 23,
  BF16 = 30,
};

// Q8_0: blocks of 32 weights, one fp16 scale then 32 int8 values (34 bytes).
constexpr int kQ8Block = 32;
struct BlockQ8_0 {
  uint16_t d;  // fp16 scale
  int8_t qs[kQ8Block];
};
static_assert(sizeof(BlockQ8_0) == 34);

// True for the types a GGUF tensor may hold in ponder: F32, F16, BF16, the legacy quants
// (Q4_0, Q4_1, Q5_0, Q5_1, Q8_0), the k-quants (Q2_K .. Q6_K) and IQ4_NL, IQ4_XS.
bool is_supported(GgmlType t);
std::string ggml_type_name(uint32_t t);   // "Q4_K" etc. for every ggml type number, "type N" if unknown
int64_t ggml_block_size(GgmlType t);      // elements per block (0 for a type ponder does not know)
int64_t ggml_type_size(GgmlType t);       // bytes per block (0 for a type ponder does not know)
// Bytes of a row of n elements; n must be a multiple of the block size.
inline int64_t ggml_row_size(GgmlType t, int64_t n) { return n / ggml_block_size(t) * ggml_type_size(t); }
// The type of a name as llama.cpp spells it ("q4_k", "Q4_K", "f16"); false when unknown.
bool parse_ggml_type(const std::string& name, GgmlType& out);

}  // namespace ponder

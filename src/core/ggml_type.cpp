#include "core/ggml_type.h"

namespace ponder {

bool is_supported(GgmlType t) {
  return t == GgmlType::F32 || t == GgmlType::F16 || t == GgmlType::Q8_0 || t == GgmlType::BF16;
}

std::string ggml_type_name(uint32_t t) {
  static const char* names[] = {"F32",  "F16",  "Q4_0", "Q4_1", "type 4", "type 5", "Q5_0",
                                "Q5_1", "Q8_0", "Q8_1", "Q2_K", "Q3_K",   "Q4_K",   "Q5_K",
                                "Q6_K", "Q8_K", "IQ2_XXS", "IQ2_XS", "IQ3_XXS", "IQ1_S",
                                "IQ4_NL", "IQ3_S", "IQ2_S", "IQ4_XS", "I8", "I16", "I32", "I64",
                                "F64", "IQ1_M", "BF16"};
  if (t < sizeof(names) / sizeof(names[0])) return names[t];
  return "type " + std::to_string(t);
}

int64_t ggml_block_size(GgmlType t) { return t == GgmlType::Q8_0 ? kQ8Block : 1; }

int64_t ggml_type_size(GgmlType t) {
  switch (t) {
    case GgmlType::F32: return 4;
    case GgmlType::F16: return 2;
    case GgmlType::BF16: return 2;
    case GgmlType::Q8_0: return sizeof(BlockQ8_0);
  }
  return 0;
}

}  // namespace ponder

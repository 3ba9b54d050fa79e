#include "core/ggml_type.h"

#include <algorithm>
#include <cctype>

namespace ponder {

namespace {

struct TypeInfo {
  GgmlType type;
  const char* name;
  int64_t block;  // elements per block
  int64_t bytes;  // bytes per block
  bool weights;   // a GGUF tensor may hold it
};

// Block layouts (ggml-common.h): Q4_0 = fp16 d + 16 nibble bytes; Q4_1 = d, m + 16; Q5_0 = d + 4
// high-bit bytes + 16; Q5_1 = d, m + 4 + 16; Q8_0 = d + 32; Q8_1 = d, s + 32; the k-quants are
// super-blocks of 256: Q2_K 16 scale bytes + 64 + d, dmin; Q3_K 32 hmask + 64 + 12 scales + d;
// Q4_K d, dmin + 12 + 128; Q5_K d, dmin + 12 + 32 + 128; Q6_K 128 + 64 + 16 scales + d;
// Q8_K float d + 256 + 16 int16 sums; IQ4_NL d + 16; IQ4_XS d + 2 + 4 + 128.
constexpr TypeInfo kTypes[] = {
    {GgmlType::F32, "F32", 1, 4, true},        {GgmlType::F16, "F16", 1, 2, true},
    {GgmlType::BF16, "BF16", 1, 2, true},      {GgmlType::Q4_0, "Q4_0", 32, 18, true},
    {GgmlType::Q4_1, "Q4_1", 32, 20, true},    {GgmlType::Q5_0, "Q5_0", 32, 22, true},
    {GgmlType::Q5_1, "Q5_1", 32, 24, true},    {GgmlType::Q8_0, "Q8_0", 32, 34, true},
    {GgmlType::Q8_1, "Q8_1", 32, 36, false},   {GgmlType::Q2_K, "Q2_K", 256, 84, true},
    {GgmlType::Q3_K, "Q3_K", 256, 110, true},  {GgmlType::Q4_K, "Q4_K", 256, 144, true},
    {GgmlType::Q5_K, "Q5_K", 256, 176, true},  {GgmlType::Q6_K, "Q6_K", 256, 210, true},
    {GgmlType::Q8_K, "Q8_K", 256, 292, false}, {GgmlType::IQ4_NL, "IQ4_NL", 32, 18, true},
    {GgmlType::IQ4_XS, "IQ4_XS", 256, 136, true},
};

const TypeInfo* info(GgmlType t) {
  for (const TypeInfo& i : kTypes)
    if (i.type == t) return &i;
  return nullptr;
}

}  // namespace

bool is_supported(GgmlType t) {
  const TypeInfo* i = info(t);
  return i && i->weights;
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

int64_t ggml_block_size(GgmlType t) {
  const TypeInfo* i = info(t);
  return i ? i->block : 0;
}

int64_t ggml_type_size(GgmlType t) {
  const TypeInfo* i = info(t);
  return i ? i->bytes : 0;
}

bool parse_ggml_type(const std::string& name, GgmlType& out) {
  std::string upper = name;
  std::transform(upper.begin(), upper.end(), upper.begin(), [](unsigned char c) { return char(std::toupper(c)); });
  for (const TypeInfo& i : kTypes)
    if (i.weights && upper == i.name) {
      out = i.type;
      return true;
    }
  return false;
}

}  // namespace ponder

#pragma once
// GGUF files (versions 2 and 3): metadata key/values, tensor infos and mmap'd tensor data.
// Spec: ggml's docs/gguf.md. Every count, length, offset and size is checked against the file;
// anything malformed is a FormatError that names the file and the problem.
#include <cstdint>
#include <map>
#include <memory>
#include <span>
#include <string>
#include <variant>
#include <vector>

#include "core/mapped_file.h"
#include "core/ggml_type.h"

namespace ponder {

// Metadata value types, numbered as in the file. The order matches Value's variant alternatives.
enum class GgufType : uint32_t {
  UINT8 = 0, INT8 = 1, UINT16 = 2, INT16 = 3, UINT32 = 4, INT32 = 5, FLOAT32 = 6, BOOL = 7,
  STRING = 8, ARRAY = 9, UINT64 = 10, INT64 = 11, FLOAT64 = 12,
};
std::string gguf_type_name(GgufType t);

struct GgufValue;
struct GgufArray {
  GgufType type = GgufType::UINT8;  // element type
  std::vector<GgufValue> items;
};

struct GgufValue {
  std::variant<uint8_t, int8_t, uint16_t, int16_t, uint32_t, int32_t, float, bool, std::string,
               GgufArray, uint64_t, int64_t, double>
      v;
  GgufType type() const { return GgufType(v.index()); }
  bool is_integer() const;
  bool operator==(const GgufValue&) const;
};
bool operator==(const GgufArray& a, const GgufArray& b);

struct GgufTensor {
  std::string name;
  std::vector<int64_t> ne;  // ne[0] is the innermost (input) dimension
  GgmlType type = GgmlType::F32;
  uint64_t offset = 0;      // relative to the data section
  uint64_t n_bytes = 0;
  const uint8_t* data = nullptr;  // into the map
  int64_t n_elements() const;
  std::span<const uint8_t> bytes() const { return {data, size_t(n_bytes)}; }
};

struct GgufFile {
  std::string path;
  uint32_t version = 3;
  uint64_t alignment = 32;
  std::vector<std::pair<std::string, GgufValue>> metadata;  // in file order
  std::vector<GgufTensor> tensors;                           // in file order
  std::shared_ptr<MappedFile> map;                           // keeps tensor data alive

  const GgufValue* find(const std::string& key) const;
  const GgufTensor* find_tensor(const std::string& name) const;
  // Typed getters: throw FormatError naming the file and key when the key is missing or has
  // another type. Integer getters accept any integer type whose value fits.
  const GgufValue& get(const std::string& key) const;
  std::string get_string(const std::string& key) const;
  int64_t get_int(const std::string& key) const;
  int64_t get_int(const std::string& key, int64_t fallback) const;
  double get_float(const std::string& key) const;
  double get_float(const std::string& key, double fallback) const;
  bool get_bool(const std::string& key, bool fallback) const;
  const GgufArray& get_array(const std::string& key, GgufType elem) const;
  const GgufTensor& get_tensor(const std::string& name) const;

  // A file of metadata only, built in memory (e.g. a tokenizer to construct from its keys).
  static GgufFile from_metadata(std::string name, std::vector<std::pair<std::string, GgufValue>> metadata);

 private:
  std::map<std::string, size_t> key_index_;
  std::map<std::string, size_t> tensor_index_;
  friend GgufFile parse_gguf(std::span<const uint8_t>, const std::string&);
};

// Reads and maps a file; tensor data stays in the map.
GgufFile read_gguf(const std::string& path);
// Parses bytes already in memory (the fuzz target's entry); `name` is used in error messages.
// The returned file's tensor data points into `bytes`.
GgufFile parse_gguf(std::span<const uint8_t> bytes, const std::string& name);

// What the writer needs of a tensor: name, shape, type and its bytes.
struct GgufTensorData {
  std::string name;
  std::vector<int64_t> ne;
  GgmlType type = GgmlType::F32;
  std::span<const uint8_t> data;
};

// Writes a GGUF v3 file atomically (temp file, fsync, rename). `general.alignment` in the metadata,
// when present, sets the alignment; otherwise 32.
void write_gguf(const std::string& path, const std::vector<std::pair<std::string, GgufValue>>& metadata,
                const std::vector<GgufTensorData>& tensors);

// A complete GGUF file with metadata only, as bytes (parse_gguf reads it back).
std::vector<uint8_t> gguf_metadata_bytes(const std::vector<std::pair<std::string, GgufValue>>& metadata);

}  // namespace ponder

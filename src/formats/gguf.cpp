#include "formats/gguf.h"

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <fcntl.h>
#include <set>
#include <unistd.h>

#include "core/atomic_file.h"
#include "core/error.h"

namespace ponder {

namespace {

constexpr uint32_t kMagic = 0x46554747;  // "GGUF" little-endian
constexpr int kMaxDims = 4;              // GGML_MAX_DIMS
constexpr int kMaxArrayDepth = 8;
// At most 2^60 elements per tensor, so that its byte size (at most 4 bytes an element) fits in int64.
constexpr uint64_t kMaxElements = uint64_t(1) << 60;

// A bounds-checked cursor over the file's bytes.
struct Cursor {
  std::span<const uint8_t> bytes;
  size_t pos = 0;
  const std::string& name;

  [[noreturn]] void fail(const std::string& what) const {
    throw FormatError(name + ": " + what + " (at byte " + std::to_string(pos) + " of " +
                      std::to_string(bytes.size()) + ")");
  }
  size_t left() const { return bytes.size() - pos; }
  void need(uint64_t n, const char* what) const {
    if (n > left()) fail(std::string("truncated file: ") + what + " needs " + std::to_string(n) +
                         " bytes, " + std::to_string(left()) + " left");
  }
  template <typename T>
  T read(const char* what) {
    need(sizeof(T), what);
    T x;
    std::memcpy(&x, bytes.data() + pos, sizeof(T));
    pos += sizeof(T);
    return x;
  }
  std::string read_string(const char* what) {
    const uint64_t n = read<uint64_t>(what);
    need(n, what);
    std::string s(reinterpret_cast<const char*>(bytes.data() + pos), size_t(n));
    pos += size_t(n);
    return s;
  }
};

// Smallest encoded size of one value of a type: bounds array counts before allocating.
uint64_t min_encoded_size(GgufType t) {
  switch (t) {
    case GgufType::UINT8: case GgufType::INT8: case GgufType::BOOL: return 1;
    case GgufType::UINT16: case GgufType::INT16: return 2;
    case GgufType::UINT32: case GgufType::INT32: case GgufType::FLOAT32: return 4;
    case GgufType::UINT64: case GgufType::INT64: case GgufType::FLOAT64: return 8;
    case GgufType::STRING: return 8;
    case GgufType::ARRAY: return 12;
  }
  return 1;
}

bool valid_type(uint32_t t) { return t <= uint32_t(GgufType::FLOAT64); }

GgufValue read_value(Cursor& c, GgufType t, int depth, const std::string& key) {
  switch (t) {
    case GgufType::UINT8: return {c.read<uint8_t>("uint8 value")};
    case GgufType::INT8: return {c.read<int8_t>("int8 value")};
    case GgufType::UINT16: return {c.read<uint16_t>("uint16 value")};
    case GgufType::INT16: return {c.read<int16_t>("int16 value")};
    case GgufType::UINT32: return {c.read<uint32_t>("uint32 value")};
    case GgufType::INT32: return {c.read<int32_t>("int32 value")};
    case GgufType::FLOAT32: return {c.read<float>("float32 value")};
    case GgufType::BOOL: {
      const uint8_t b = c.read<uint8_t>("bool value");
      if (b > 1) c.fail("key '" + key + "': bool value " + std::to_string(b) + ", expected 0 or 1");
      return {b == 1};
    }
    case GgufType::STRING: return {c.read_string("string value")};
    case GgufType::UINT64: return {c.read<uint64_t>("uint64 value")};
    case GgufType::INT64: return {c.read<int64_t>("int64 value")};
    case GgufType::FLOAT64: return {c.read<double>("float64 value")};
    case GgufType::ARRAY: {
      if (depth >= kMaxArrayDepth) c.fail("key '" + key + "': arrays nested deeper than " +
                                          std::to_string(kMaxArrayDepth));
      const uint32_t et = c.read<uint32_t>("array element type");
      if (!valid_type(et)) c.fail("key '" + key + "': unknown array element type " + std::to_string(et));
      const uint64_t n = c.read<uint64_t>("array length");
      const auto elem = GgufType(et);
      if (n > c.left() / min_encoded_size(elem))
        c.fail("key '" + key + "': array of " + std::to_string(n) + " " + gguf_type_name(elem) +
               " values cannot fit in the " + std::to_string(c.left()) + " bytes left");
      GgufArray a;
      a.type = elem;
      a.items.reserve(size_t(n));
      for (uint64_t i = 0; i < n; ++i) a.items.push_back(read_value(c, elem, depth + 1, key));
      return {std::move(a)};
    }
  }
  c.fail("key '" + key + "': unknown value type " + std::to_string(uint32_t(t)));
}

}  // namespace

std::string gguf_type_name(GgufType t) {
  static const char* names[] = {"uint8", "int8",   "uint16", "int16", "uint32", "int32",  "float32",
                                "bool",  "string", "array",  "uint64", "int64", "float64"};
  const auto i = uint32_t(t);
  return i < 13 ? names[i] : "type " + std::to_string(i);
}

bool GgufValue::is_integer() const {
  switch (type()) {
    case GgufType::UINT8: case GgufType::INT8: case GgufType::UINT16: case GgufType::INT16:
    case GgufType::UINT32: case GgufType::INT32: case GgufType::UINT64: case GgufType::INT64:
      return true;
    default: return false;
  }
}

bool operator==(const GgufArray& a, const GgufArray& b) { return a.type == b.type && a.items == b.items; }
bool GgufValue::operator==(const GgufValue& o) const { return v == o.v; }

int64_t GgufTensor::n_elements() const {
  int64_t n = 1;
  for (int64_t d : ne) n *= d;
  return n;
}

GgufFile parse_gguf(std::span<const uint8_t> bytes, const std::string& name) {
  Cursor c{bytes, 0, name};
  GgufFile f;
  f.path = name;
  const uint32_t magic = c.read<uint32_t>("magic");
  if (magic != kMagic) {
    char buf[64];
    std::snprintf(buf, sizeof buf, "bad magic 0x%08x, expected 0x%08x (\"GGUF\")", magic, kMagic);
    c.pos = 0;
    c.fail(buf);
  }
  f.version = c.read<uint32_t>("version");
  if (f.version != 2 && f.version != 3)
    c.fail("unsupported GGUF version " + std::to_string(f.version) + ", expected 2 or 3");
  const uint64_t n_tensors = c.read<uint64_t>("tensor count");
  const uint64_t n_kv = c.read<uint64_t>("metadata count");
  // A key/value needs at least 8 (key length) + 4 (type) + 1 bytes; a tensor info at least 8+4+8+4+8.
  if (n_kv > c.left() / 13) c.fail("metadata count " + std::to_string(n_kv) + " cannot fit in the file");
  if (n_tensors > c.left() / 32) c.fail("tensor count " + std::to_string(n_tensors) + " cannot fit in the file");

  for (uint64_t i = 0; i < n_kv; ++i) {
    std::string key = c.read_string("metadata key");
    const uint32_t t = c.read<uint32_t>("metadata value type");
    if (!valid_type(t)) c.fail("key '" + key + "': unknown value type " + std::to_string(t));
    GgufValue v = read_value(c, GgufType(t), 0, key);
    if (f.key_index_.count(key)) c.fail("duplicate metadata key '" + key + "'");
    f.key_index_[key] = f.metadata.size();
    f.metadata.emplace_back(std::move(key), std::move(v));
  }

  if (const GgufValue* a = f.find("general.alignment")) {
    if (a->type() != GgufType::UINT32)
      c.fail("general.alignment has type " + gguf_type_name(a->type()) + ", expected uint32");
    const uint32_t al = std::get<uint32_t>(a->v);
    if (al == 0 || (al & (al - 1)) != 0)
      c.fail("general.alignment is " + std::to_string(al) + ", expected a power of two");
    f.alignment = al;
  }

  for (uint64_t i = 0; i < n_tensors; ++i) {
    GgufTensor t;
    t.name = c.read_string("tensor name");
    const uint32_t n_dims = c.read<uint32_t>("tensor dimension count");
    if (n_dims < 1 || n_dims > kMaxDims)
      c.fail("tensor '" + t.name + "' has " + std::to_string(n_dims) + " dimensions, expected 1 to 4");
    uint64_t n_elements = 1;
    for (uint32_t d = 0; d < n_dims; ++d) {
      const uint64_t ne = c.read<uint64_t>("tensor dimension");
      if (ne == 0) c.fail("tensor '" + t.name + "' has a zero dimension ne[" + std::to_string(d) + "] = 0");
      if (ne > kMaxElements / n_elements)
        c.fail("tensor '" + t.name + "' has an impossible dimension ne[" + std::to_string(d) + "] = " +
               std::to_string(ne) + ": more than 2^60 elements");
      n_elements *= ne;
      t.ne.push_back(int64_t(ne));
    }
    const uint32_t type = c.read<uint32_t>("tensor type");
    t.type = GgmlType(type);
    if (!is_supported(t.type))
      c.fail("tensor '" + t.name + "' has type " + ggml_type_name(type) +
             ", ponder reads F32, F16, BF16, Q4_0, Q4_1, Q5_0, Q5_1, Q8_0, Q2_K, Q3_K, Q4_K, Q5_K, Q6_K, IQ4_NL and IQ4_XS");
    if (t.ne[0] % ggml_block_size(t.type) != 0)
      c.fail("tensor '" + t.name + "' of type " + ggml_type_name(type) + " has ne[0] = " +
             std::to_string(t.ne[0]) + ", not a multiple of its block size " +
             std::to_string(ggml_block_size(t.type)));
    t.n_bytes = n_elements / uint64_t(ggml_block_size(t.type)) * uint64_t(ggml_type_size(t.type));
    t.offset = c.read<uint64_t>("tensor offset");
    if (t.offset % f.alignment != 0)
      c.fail("tensor '" + t.name + "' offset " + std::to_string(t.offset) + " is not a multiple of the alignment " +
             std::to_string(f.alignment));
    if (f.tensor_index_.count(t.name)) c.fail("duplicate tensor name '" + t.name + "'");
    f.tensor_index_[t.name] = f.tensors.size();
    f.tensors.push_back(std::move(t));
  }

  // The data section starts at the next multiple of the alignment.
  const uint64_t data_start = (uint64_t(c.pos) + f.alignment - 1) / f.alignment * f.alignment;
  if (data_start > bytes.size() && !f.tensors.empty())
    c.fail("truncated file: the data section would start at byte " + std::to_string(data_start));
  const uint64_t data_size = data_start <= bytes.size() ? bytes.size() - data_start : 0;
  for (GgufTensor& t : f.tensors) {
    if (t.offset > data_size || t.n_bytes > data_size - t.offset)
      throw FormatError(name + ": tensor '" + t.name + "' needs " + std::to_string(t.n_bytes) +
                        " data bytes at data offset " + std::to_string(t.offset) + " but the data section has " +
                        std::to_string(data_size) + " bytes (truncated file or bad offset)");
    t.data = bytes.data() + data_start + t.offset;
  }
  return f;
}

GgufFile read_gguf(const std::string& path) {
  auto map = std::make_shared<MappedFile>(path);
  GgufFile f = parse_gguf(map->bytes(), path);
  f.map = std::move(map);
  return f;
}

GgufFile GgufFile::from_metadata(std::string name, std::vector<std::pair<std::string, GgufValue>> metadata) {
  GgufFile f;
  f.path = std::move(name);
  for (auto& [k, v] : metadata) {
    if (f.key_index_.count(k)) throw InvalidArgument(f.path + ": duplicate metadata key '" + k + "'");
    f.key_index_[k] = f.metadata.size();
    f.metadata.emplace_back(std::move(k), std::move(v));
  }
  return f;
}

const GgufValue* GgufFile::find(const std::string& key) const {
  auto it = key_index_.find(key);
  return it == key_index_.end() ? nullptr : &metadata[it->second].second;
}

const GgufTensor* GgufFile::find_tensor(const std::string& n) const {
  auto it = tensor_index_.find(n);
  return it == tensor_index_.end() ? nullptr : &tensors[it->second];
}

const GgufValue& GgufFile::get(const std::string& key) const {
  const GgufValue* v = find(key);
  if (!v) throw FormatError(path + ": missing required metadata key '" + key + "'");
  return *v;
}

namespace {
[[noreturn]] void wrong_type(const std::string& path, const std::string& key, GgufType actual, const char* expected) {
  throw FormatError(path + ": metadata key '" + key + "' has type " + gguf_type_name(actual) + ", expected " +
                    expected);
}
}  // namespace

std::string GgufFile::get_string(const std::string& key) const {
  const GgufValue& v = get(key);
  if (v.type() != GgufType::STRING) wrong_type(path, key, v.type(), "string");
  return std::get<std::string>(v.v);
}

int64_t GgufFile::get_int(const std::string& key) const {
  const GgufValue& v = get(key);
  if (!v.is_integer()) wrong_type(path, key, v.type(), "an integer");
  if (v.type() == GgufType::UINT64) {
    const uint64_t u = std::get<uint64_t>(v.v);
    if (u > uint64_t(INT64_MAX)) throw FormatError(path + ": metadata key '" + key + "' value " + std::to_string(u) + " is too large");
    return int64_t(u);
  }
  return std::visit([](auto x) -> int64_t {
    if constexpr (std::is_integral_v<decltype(x)>) return int64_t(x); else return 0;
  }, v.v);
}

int64_t GgufFile::get_int(const std::string& key, int64_t fallback) const {
  return find(key) ? get_int(key) : fallback;
}

double GgufFile::get_float(const std::string& key) const {
  const GgufValue& v = get(key);
  if (v.type() == GgufType::FLOAT32) return std::get<float>(v.v);
  if (v.type() == GgufType::FLOAT64) return std::get<double>(v.v);
  wrong_type(path, key, v.type(), "float32 or float64");
}

double GgufFile::get_float(const std::string& key, double fallback) const {
  return find(key) ? get_float(key) : fallback;
}

bool GgufFile::get_bool(const std::string& key, bool fallback) const {
  const GgufValue* v = find(key);
  if (!v) return fallback;
  if (v->type() != GgufType::BOOL) wrong_type(path, key, v->type(), "bool");
  return std::get<bool>(v->v);
}

const GgufArray& GgufFile::get_array(const std::string& key, GgufType elem) const {
  const GgufValue& v = get(key);
  if (v.type() != GgufType::ARRAY) wrong_type(path, key, v.type(), ("array of " + gguf_type_name(elem)).c_str());
  const GgufArray& a = std::get<GgufArray>(v.v);
  if (a.type != elem)
    throw FormatError(path + ": metadata key '" + key + "' is an array of " + gguf_type_name(a.type) +
                      ", expected an array of " + gguf_type_name(elem));
  return a;
}

const GgufTensor& GgufFile::get_tensor(const std::string& n) const {
  const GgufTensor* t = find_tensor(n);
  if (!t) throw FormatError(path + ": missing tensor '" + n + "'");
  return *t;
}

// ---- writer ----

namespace {

struct Buffer {
  std::vector<uint8_t> b;
  template <typename T>
  void put(T x) {
    const auto* p = reinterpret_cast<const uint8_t*>(&x);
    b.insert(b.end(), p, p + sizeof(T));
  }
  void put_string(const std::string& s) {
    put<uint64_t>(s.size());
    b.insert(b.end(), s.begin(), s.end());
  }
  void pad_to(uint64_t alignment) {
    while (b.size() % alignment) b.push_back(0);
  }
};

void put_value(Buffer& out, const GgufValue& v) {
  std::visit([&](const auto& x) {
    using T = std::decay_t<decltype(x)>;
    if constexpr (std::is_same_v<T, std::string>) {
      out.put_string(x);
    } else if constexpr (std::is_same_v<T, GgufArray>) {
      out.put<uint32_t>(uint32_t(x.type));
      out.put<uint64_t>(x.items.size());
      for (const GgufValue& item : x.items) {
        if (item.type() != x.type)
          throw InvalidArgument("gguf writer: array of " + gguf_type_name(x.type) + " holds a " +
                                gguf_type_name(item.type()));
        put_value(out, item);
      }
    } else if constexpr (std::is_same_v<T, bool>) {
      out.put<uint8_t>(x ? 1 : 0);
    } else {
      out.put<T>(x);
    }
  }, v.v);
}

}  // namespace

void write_gguf(const std::string& path, const std::vector<std::pair<std::string, GgufValue>>& metadata,
                const std::vector<GgufTensorData>& tensors) {
  // Refuse what the reader would refuse: the writer never leaves a file that cannot be read back.
  uint64_t alignment = 32;
  std::set<std::string> keys;
  for (const auto& [k, v] : metadata) {
    if (!keys.insert(k).second) throw InvalidArgument("gguf writer: duplicate metadata key '" + k + "'");
    if (k != "general.alignment") continue;
    if (v.type() != GgufType::UINT32)
      throw InvalidArgument("gguf writer: general.alignment has type " + gguf_type_name(v.type()) +
                            ", expected uint32");
    alignment = std::get<uint32_t>(v.v);
  }
  if (alignment == 0 || (alignment & (alignment - 1)))
    throw InvalidArgument("gguf writer: general.alignment is " + std::to_string(alignment) +
                          ", expected a power of two");

  Buffer h;
  h.put<uint32_t>(kMagic);
  h.put<uint32_t>(3);
  h.put<uint64_t>(tensors.size());
  h.put<uint64_t>(metadata.size());
  for (const auto& [k, v] : metadata) {
    h.put_string(k);
    h.put<uint32_t>(uint32_t(v.type()));
    put_value(h, v);
  }
  uint64_t offset = 0;
  std::set<std::string> names;
  for (const GgufTensorData& t : tensors) {
    if (!names.insert(t.name).second) throw InvalidArgument("gguf writer: duplicate tensor name '" + t.name + "'");
    if (t.ne.empty() || t.ne.size() > size_t(kMaxDims))
      throw InvalidArgument("gguf writer: tensor '" + t.name + "' needs 1 to 4 dimensions");
    if (!is_supported(t.type))
      throw InvalidArgument("gguf writer: tensor '" + t.name + "' has type " + ggml_type_name(uint32_t(t.type)));
    uint64_t n = 1;
    for (int64_t d : t.ne) {
      if (d < 1 || uint64_t(d) > kMaxElements / n)
        throw InvalidArgument("gguf writer: tensor '" + t.name + "' has dimension " + std::to_string(d));
      n *= uint64_t(d);
    }
    if (t.ne[0] % ggml_block_size(t.type) != 0)
      throw InvalidArgument("gguf writer: tensor '" + t.name + "' has ne[0] = " + std::to_string(t.ne[0]) +
                            ", not a multiple of its block size " + std::to_string(ggml_block_size(t.type)));
    const uint64_t expect = n / uint64_t(ggml_block_size(t.type)) * uint64_t(ggml_type_size(t.type));
    if (t.data.size() != expect)
      throw InvalidArgument("gguf writer: tensor '" + t.name + "' has " + std::to_string(t.data.size()) +
                            " bytes, its shape and type need " + std::to_string(expect));
    h.put_string(t.name);
    h.put<uint32_t>(uint32_t(t.ne.size()));
    for (int64_t d : t.ne) h.put<uint64_t>(uint64_t(d));
    h.put<uint32_t>(uint32_t(t.type));
    h.put<uint64_t>(offset);
    offset += (expect + alignment - 1) / alignment * alignment;
  }
  h.pad_to(alignment);

  AtomicFile out(path);
  out.write(h.b.data(), h.b.size());
  static const uint8_t zeros[64] = {};
  for (const GgufTensorData& t : tensors) {
    out.write(t.data.data(), t.data.size());
    size_t pad = size_t((alignment - t.data.size() % alignment) % alignment);
    while (pad > 0) {
      const size_t k = pad < sizeof zeros ? pad : sizeof zeros;
      out.write(zeros, k);
      pad -= k;
    }
  }
  out.commit();
}

std::vector<uint8_t> gguf_metadata_bytes(const std::vector<std::pair<std::string, GgufValue>>& metadata) {
  Buffer h;
  h.put<uint32_t>(kMagic);
  h.put<uint32_t>(3);
  h.put<uint64_t>(0);
  h.put<uint64_t>(metadata.size());
  for (const auto& [k, v] : metadata) {
    h.put_string(k);
    h.put<uint32_t>(uint32_t(v.type()));
    put_value(h, v);
  }
  return std::move(h.b);
}

}  // namespace ponder

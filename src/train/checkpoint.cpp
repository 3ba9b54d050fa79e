#include "train/checkpoint.h"

#include <cstring>
#include <fstream>
#include <iterator>

#include "core/atomic_file.h"
#include "core/error.h"

namespace ponder {

namespace {

constexpr char kMagic[8] = {'P', 'O', 'N', 'D', 'E', 'R', 'C', 'K'};
constexpr uint32_t kVersion = 1;

uint64_t fnv1a(const uint8_t* p, size_t n) {
  uint64_t h = 1469598103934665603ull;
  for (size_t i = 0; i < n; ++i) h = (h ^ p[i]) * 1099511628211ull;
  return h;
}

struct Writer {
  std::vector<uint8_t> b;
  template <typename T>
  void put(const T& x) {
    const auto* p = reinterpret_cast<const uint8_t*>(&x);
    b.insert(b.end(), p, p + sizeof(T));
  }
  void bytes(const void* p, size_t n) {
    put<uint64_t>(n);
    const auto* q = static_cast<const uint8_t*>(p);
    b.insert(b.end(), q, q + n);
  }
  void str(const std::string& s) { bytes(s.data(), s.size()); }
  void floats(const std::vector<float>& v) { bytes(v.data(), v.size() * sizeof(float)); }
};

struct Reader {
  const std::vector<uint8_t>& b;
  size_t pos;
  const std::string& path;
  void need(uint64_t n) const {
    if (n > b.size() - pos) throw FormatError(path + ": truncated checkpoint (needs " + std::to_string(n) + " more bytes at " + std::to_string(pos) + ")");
  }
  template <typename T>
  T get() {
    need(sizeof(T));
    T x;
    std::memcpy(&x, b.data() + pos, sizeof(T));
    pos += sizeof(T);
    return x;
  }
  std::vector<uint8_t> bytes() {
    const uint64_t n = get<uint64_t>();
    need(n);
    std::vector<uint8_t> out(b.begin() + ptrdiff_t(pos), b.begin() + ptrdiff_t(pos + n));
    pos += n;
    return out;
  }
  std::string str() {
    const auto v = bytes();
    return {v.begin(), v.end()};
  }
  std::vector<float> floats() {
    const auto v = bytes();
    if (v.size() % sizeof(float)) throw FormatError(path + ": corrupt float array in the checkpoint");
    std::vector<float> out(v.size() / sizeof(float));
    std::memcpy(out.data(), v.data(), v.size());
    return out;
  }
};

void put_config(Writer& w, const TrainConfig& c) {
  for (int v : {c.vocab, c.dim, c.n_layers, c.n_heads, c.n_kv_heads, c.ffn, c.ctx}) w.put<int32_t>(v);
  w.put<float>(c.rope_base);
  w.put<float>(c.rms_eps);
  w.put<uint8_t>(c.tied);
}

TrainConfig get_config(Reader& r) {
  TrainConfig c;
  for (int* v : {&c.vocab, &c.dim, &c.n_layers, &c.n_heads, &c.n_kv_heads, &c.ffn, &c.ctx}) *v = r.get<int32_t>();
  c.rope_base = r.get<float>();
  c.rms_eps = r.get<float>();
  c.tied = r.get<uint8_t>() != 0;
  return c;
}

}  // namespace

void write_checkpoint(const std::string& path, const Checkpoint& ck) {
  Writer w;
  w.b.insert(w.b.end(), kMagic, kMagic + 8);
  w.put<uint32_t>(kVersion);
  w.str(ck.kind);
  put_config(w, ck.config);
  w.floats(ck.params);
  w.floats(ck.adam.m);
  w.floats(ck.adam.v);
  w.put<int64_t>(ck.adam.step);
  w.put<int64_t>(ck.step);
  w.str(ck.run_options);
  w.put<uint64_t>(ck.extra.size());
  for (const auto& [k, v] : ck.extra) {
    w.str(k);
    w.str(v);
  }
  w.bytes(ck.tokenizer.data(), ck.tokenizer.size());
  w.put<uint64_t>(fnv1a(w.b.data(), w.b.size()));
  AtomicFile out(path);
  out.write(w.b.data(), w.b.size());
  out.commit();
}

Checkpoint read_checkpoint(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw FormatError(path + ": cannot open the checkpoint");
  const std::vector<uint8_t> b((std::istreambuf_iterator<char>(in)), {});
  if (b.size() < 8 + 4 + 8 || std::memcmp(b.data(), kMagic, 8) != 0)
    throw FormatError(path + ": not a ponder checkpoint (bad magic)");
  uint64_t stored;
  std::memcpy(&stored, b.data() + b.size() - 8, 8);
  if (stored != fnv1a(b.data(), b.size() - 8)) throw FormatError(path + ": checksum mismatch (corrupt or truncated checkpoint)");
  Reader r{b, 8, path};
  const uint32_t version = r.get<uint32_t>();
  if (version != kVersion)
    throw FormatError(path + ": checkpoint version " + std::to_string(version) + ", expected " + std::to_string(kVersion));
  Checkpoint ck;
  ck.kind = r.str();
  ck.config = get_config(r);
  ck.params = r.floats();
  ck.adam.m = r.floats();
  ck.adam.v = r.floats();
  ck.adam.step = r.get<int64_t>();
  ck.step = r.get<int64_t>();
  ck.run_options = r.str();
  const uint64_t n_extra = r.get<uint64_t>();
  if (n_extra > 1024) throw FormatError(path + ": corrupt checkpoint (too many extra entries)");
  for (uint64_t i = 0; i < n_extra; ++i) {
    std::string k = r.str();
    ck.extra.emplace_back(std::move(k), r.str());
  }
  ck.tokenizer = r.bytes();
  ck.config.validate();
  if (ck.params.size() != ParamLayout::for_config(ck.config).total)
    throw FormatError(path + ": the checkpoint's parameters do not fit its model config");
  return ck;
}

}  // namespace ponder

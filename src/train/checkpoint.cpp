#include "train/checkpoint.h"

#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <nlohmann/json.hpp>
#include <set>

#include "core/atomic_file.h"
#include "core/error.h"

namespace ponder {

namespace {

constexpr char kMagic[8] = {'P', 'O', 'N', 'D', 'E', 'R', 'C', 'K'};
// 2: the model config holds the architecture name (version 1 files are llama models).
// 3: then the LoRA config (rank, alpha, targets; rank 0 without adapters).
constexpr uint32_t kVersion = 3;


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
  std::span<const uint8_t> b;
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
    std::vector<uint8_t> out(b.begin() + ptrdiff_t(pos), b.begin() + ptrdiff_t(pos + size_t(n)));
    pos += size_t(n);
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
    if (!out.empty()) std::memcpy(out.data(), v.data(), v.size());  // (an empty vector's data() may be null)
    return out;
  }
};

void put_config(Writer& w, const TrainConfig& c) {
  for (int v : {c.vocab, c.dim, c.n_layers, c.n_heads, c.n_kv_heads, c.ffn, c.ctx}) w.put<int32_t>(v);
  w.put<float>(c.rope_base);
  w.put<float>(c.rms_eps);
  w.put<uint8_t>(c.tied);
  w.str(c.arch);
}

TrainConfig get_config(Reader& r, uint32_t version) {
  TrainConfig c;
  for (int* v : {&c.vocab, &c.dim, &c.n_layers, &c.n_heads, &c.n_kv_heads, &c.ffn, &c.ctx}) *v = r.get<int32_t>();
  c.rope_base = r.get<float>();
  c.rms_eps = r.get<float>();
  c.tied = r.get<uint8_t>() != 0;
  c.arch = version >= 2 ? r.str() : "llama";
  return c;
}

// ParamLayout::for_config(c).total computed without building the layout and without overflow
// (an untrusted config may claim 2^31 layers); UINT64_MAX when it does not fit in 64 bits.
uint64_t param_count(const TrainConfig& c) {
  using u128 = unsigned __int128;
  const u128 C = u128(c.dim), qd = u128(c.q_dim()), kvd = u128(c.kv_dim()), F = u128(c.ffn), V = u128(c.vocab);
  const u128 per_layer = 2 * C + qd * C + 2 * kvd * C + C * qd + 3 * F * C + (c.qkv_bias() ? qd + 2 * kvd : 0);
  const u128 total = V * C + u128(c.n_layers) * per_layer + C + (c.tied ? 0 : V * C);
  return total > u128(UINT64_MAX) ? UINT64_MAX : uint64_t(total);
}

// LoraAdapters(c, lora).layout.total the same way (lora validated against c).
uint64_t adapter_count(const TrainConfig& c, const LoraConfig& lora) {
  using u128 = unsigned __int128;
  u128 per_layer = 0;
  for (LoraTarget t : lora.targets) {
    const auto [in, out] = lora_shape(c, t);
    per_layer += u128(lora.rank) * (u128(in) + u128(out));
  }
  const u128 total = u128(c.n_layers) * per_layer;
  return total > u128(UINT64_MAX) ? UINT64_MAX : uint64_t(total);
}

void check_sizes(const Checkpoint& ck, const std::string& path) {
  try {
    ck.config.validate();
  } catch (const InvalidArgument& e) {
    throw FormatError(path + ": " + e.what());
  }
  if (!(ck.config.rope_base > 0) || !(ck.config.rms_eps > 0))
    throw FormatError(path + ": model config: rope_base and rms_eps must be > 0");
  if (ck.lora.enabled()) {
    try {
      ck.lora.validate(ck.config);
    } catch (const InvalidArgument& e) {
      throw FormatError(path + ": LoRA config: " + e.what());
    }
  }
  const uint64_t n = ck.lora.enabled() ? adapter_count(ck.config, ck.lora) : param_count(ck.config);
  if (ck.params.size() != n)
    throw FormatError(path + ": " + std::to_string(ck.params.size()) + " parameters, but its model config has " +
                      (n == UINT64_MAX ? std::string("more than 2^64") : std::to_string(n)));
  for (const auto& [name, moment] : {std::pair{"m", &ck.adam.m}, std::pair{"v", &ck.adam.v}})
    if (!(moment->empty() && ck.adam.step == 0) && moment->size() != ck.params.size())
      throw FormatError(path + ": AdamW " + name + " holds " + std::to_string(moment->size()) + " values, expected " +
                        std::to_string(ck.params.size()) + " (one per parameter)");
  if (ck.adam.m.size() != ck.adam.v.size())
    throw FormatError(path + ": AdamW m and v differ in size (" + std::to_string(ck.adam.m.size()) + " and " +
                      std::to_string(ck.adam.v.size()) + ")");
  if (ck.adam.step < 0 || ck.step < 0)
    throw FormatError(path + ": negative step count (step " + std::to_string(ck.step) + ", AdamW step " +
                      std::to_string(ck.adam.step) + ")");
}

// A JSON value for an error message: numbers in their shortest form that still tells a and b apart.
std::string show(const nlohmann::json& v, const nlohmann::json& other) {
  if (v.is_null()) return "(absent)";
  if (!v.is_number_float()) return v.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
  char buf[40];
  for (int digits : {7, 17}) {
    std::snprintf(buf, sizeof buf, "%.*g", digits, v.get<double>());
    std::string s = buf;
    char obuf[40];
    std::snprintf(obuf, sizeof obuf, "%.*g", digits, other.is_number() ? other.get<double>() : 0.0);
    if (s != obuf || !other.is_number()) return s;
  }
  return buf;
}

}  // namespace

void write_checkpoint(const std::string& path, const Checkpoint& ck) {
  Writer w;
  w.b.insert(w.b.end(), kMagic, kMagic + 8);
  w.put<uint32_t>(kVersion);
  w.str(ck.kind);
  put_config(w, ck.config);
  w.put<int32_t>(ck.lora.rank);
  w.put<float>(ck.lora.alpha);
  w.str(lora_targets_text(ck.lora.targets));
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
  w.put<uint64_t>(checkpoint_checksum(w.b));
  AtomicFile out(path);
  out.write(w.b.data(), w.b.size());
  out.commit();
}

uint64_t checkpoint_checksum(std::span<const uint8_t> bytes) {  // FNV-1a
  uint64_t h = 1469598103934665603ull;
  for (uint8_t x : bytes) h = (h ^ x) * 1099511628211ull;
  return h;
}

Checkpoint read_checkpoint(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw FormatError(path + ": cannot open the checkpoint");
  const std::vector<uint8_t> b((std::istreambuf_iterator<char>(in)), {});
  return parse_checkpoint(b, path);
}

Checkpoint parse_checkpoint(std::span<const uint8_t> b, const std::string& path) {
  if (b.size() < 8 + 4 + 8 || std::memcmp(b.data(), kMagic, 8) != 0)
    throw FormatError(path + ": not a ponder checkpoint (bad magic)");
  uint64_t stored;
  std::memcpy(&stored, b.data() + b.size() - 8, 8);
  if (stored != checkpoint_checksum(b.first(b.size() - 8)))
    throw FormatError(path + ": checksum mismatch (corrupt or truncated checkpoint)");
  Reader r{b.first(b.size() - 8), 8, path};
  const uint32_t version = r.get<uint32_t>();
  if (version < 1 || version > kVersion)
    throw FormatError(path + ": checkpoint version " + std::to_string(version) + ", expected 1 to " + std::to_string(kVersion));
  Checkpoint ck;
  ck.kind = r.str();
  ck.config = get_config(r, version);
  if (version >= 3) {
    ck.lora.rank = r.get<int32_t>();
    ck.lora.alpha = r.get<float>();
    const std::string targets = r.str();
    if (ck.lora.rank < 0) throw FormatError(path + ": negative LoRA rank " + std::to_string(ck.lora.rank));
    try {
      ck.lora.targets = parse_lora_targets(targets);
    } catch (const InvalidArgument& e) {
      throw FormatError(path + ": " + e.what());
    }
  }
  ck.params = r.floats();
  ck.adam.m = r.floats();
  ck.adam.v = r.floats();
  ck.adam.step = r.get<int64_t>();
  ck.step = r.get<int64_t>();
  ck.run_options = r.str();
  const uint64_t n_extra = r.get<uint64_t>();
  if (n_extra > 1024) throw FormatError(path + ": corrupt checkpoint (" + std::to_string(n_extra) + " extra entries, at most 1024)");
  for (uint64_t i = 0; i < n_extra; ++i) {
    std::string k = r.str();
    ck.extra.emplace_back(std::move(k), r.str());
  }
  ck.tokenizer = r.bytes();
  if (r.pos != r.b.size())
    throw FormatError(path + ": " + std::to_string(r.b.size() - r.pos) + " unexpected bytes after the checkpoint's fields");
  check_sizes(ck, path);
  return ck;
}

void check_run_options(const std::string& path, const std::string& stored_json, const std::string& current_json) {
  if (stored_json == current_json) return;
  const auto stored = nlohmann::json::parse(stored_json, nullptr, false);
  const auto current = nlohmann::json::parse(current_json, nullptr, false);
  if (stored.is_discarded() || !stored.is_object())
    throw FormatError(path + ": the checkpoint's run options are not a JSON object");
  if (current.is_discarded() || !current.is_object())
    throw FormatError(path + ": this run's options are not a JSON object");
  std::set<std::string> keys;
  for (const auto& [k, v] : stored.items()) keys.insert(k);
  for (const auto& [k, v] : current.items()) keys.insert(k);
  std::string diff;
  for (const std::string& k : keys) {
    const nlohmann::json a = stored.value(k, nlohmann::json()), b = current.value(k, nlohmann::json());
    if (a == b) continue;
    diff += (diff.empty() ? " " : "; ") + k + ": " + show(a, b) + " in the checkpoint, " + show(b, a) + " now";
  }
  if (diff.empty()) return;
  throw FormatError(path + ": --resume with options that differ from the checkpoint's (use the same options, or another --out):" + diff);
}

Checkpoint read_checkpoint_for_resume(const std::string& path, const std::string& kind, const TrainConfig& config,
                                      const std::string& model_flags, const std::string& run_options) {
  if (!std::filesystem::exists(path))
    throw InvalidArgument("--resume: no checkpoint at " + path + " (leave out --resume to start afresh)");
  Checkpoint ck = read_checkpoint(path);
  if (ck.kind != kind) throw FormatError(path + ": a '" + ck.kind + "' checkpoint, expected a '" + kind + "' one");
  if (!(ck.config == config))
    throw FormatError(path + ": the checkpoint is from another model (its config differs from " + model_flags + "'s)");
  check_run_options(path, ck.run_options, run_options);
  return ck;
}

void truncate_metrics(const std::string& path, int64_t last_step) {
  std::ifstream in(path);
  std::vector<std::string> keep;
  for (std::string line; std::getline(in, line);) {
    const auto j = nlohmann::json::parse(line, nullptr, false);
    if (!j.is_discarded() && j.value("step", int64_t(0)) <= last_step) keep.push_back(line);
  }
  in.close();
  std::ofstream out(path, std::ios::trunc);
  for (const std::string& l : keep) out << l << "\n";
}

}  // namespace ponder

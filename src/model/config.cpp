#include "model/config.h"

#include "core/error.h"

namespace ponder {

namespace {
int positive(const GgufFile& f, const std::string& key, int64_t v, int64_t max = int64_t(1) << 24) {
  if (v <= 0 || v > max)
    throw FormatError(f.path + ": metadata key '" + key + "' is " + std::to_string(v) + ", expected 1 to " +
                      std::to_string(max));
  return int(v);
}
}  // namespace

ModelConfig read_config(const GgufFile& f) {
  ModelConfig c;
  const std::string arch = f.get_string("general.architecture");
  c.arch = &find_arch(arch, f.path);
  auto key = [&](const char* k) { return arch + "." + k; };
  c.n_embd = positive(f, key("embedding_length"), f.get_int(key("embedding_length")));
  c.n_layer = positive(f, key("block_count"), f.get_int(key("block_count")), 4096);
  c.n_head = positive(f, key("attention.head_count"), f.get_int(key("attention.head_count")), 4096);
  c.n_head_kv = positive(f, key("attention.head_count_kv"), f.get_int(key("attention.head_count_kv"), c.n_head), 4096);
  c.n_ff = positive(f, key("feed_forward_length"), f.get_int(key("feed_forward_length")));
  c.n_ctx_train = positive(f, key("context_length"), f.get_int(key("context_length"), 2048));
  if (c.n_embd % c.n_head != 0)
    throw FormatError(f.path + ": embedding_length " + std::to_string(c.n_embd) + " is not a multiple of head_count " +
                      std::to_string(c.n_head));
  c.head_dim = positive(f, key("attention.key_length"), f.get_int(key("attention.key_length"), c.n_embd / c.n_head), 4096);
  const int64_t v_len = f.get_int(key("attention.value_length"), c.head_dim);
  if (v_len != c.head_dim)
    throw FormatError(f.path + ": attention.value_length " + std::to_string(v_len) + " differs from key_length " +
                      std::to_string(c.head_dim) + ", which ponder does not support");
  if (c.n_head % c.n_head_kv != 0)
    throw FormatError(f.path + ": head_count " + std::to_string(c.n_head) + " is not a multiple of head_count_kv " +
                      std::to_string(c.n_head_kv));
  c.n_rot = positive(f, key("rope.dimension_count"), f.get_int(key("rope.dimension_count"), c.head_dim), 4096);
  if (c.n_rot > c.head_dim || c.n_rot % 2 != 0)
    throw FormatError(f.path + ": rope.dimension_count " + std::to_string(c.n_rot) + ", expected an even number <= " +
                      std::to_string(c.head_dim));
  c.rope_freq_base = float(f.get_float(key("rope.freq_base"), 10000.0));
  c.rms_eps = float(f.get_float(key("attention.layer_norm_rms_epsilon"), 1e-5));
  if (!(c.rope_freq_base > 0)) throw FormatError(f.path + ": rope.freq_base must be positive");
  if (!(c.rms_eps >= 0)) throw FormatError(f.path + ": attention.layer_norm_rms_epsilon must be >= 0");
  const GgufTensor& embd = f.get_tensor(tensor_name::token_embd);
  if (embd.ne.size() != 2 || embd.ne[0] != c.n_embd)
    throw FormatError(f.path + ": token_embd.weight has ne[0] = " + std::to_string(embd.ne[0]) +
                      ", expected embedding_length " + std::to_string(c.n_embd));
  c.n_vocab = positive(f, "token_embd.weight ne[1]", embd.ne[1], int64_t(1) << 30);
  c.tied_embeddings = f.find_tensor(tensor_name::output) == nullptr;
  return c;
}

}  // namespace ponder

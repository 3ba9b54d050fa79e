// libFuzzer target for the checkpoint loader (train/checkpoint.h): checkpoints are untrusted bytes,
// so any input either loads into a checkpoint whose sizes fit its model config (parameters, AdamW
// m and v) or throws ponder::FormatError, never another exception, a crash or a huge allocation.
// The input is a checkpoint without its trailing checksum; the target appends the right one, so
// the fuzzer explores the fields behind it instead of the checksum test.
// Seed: CHECKPOINT_FUZZ_SEED=PATH checkpoint_fuzz writes a small valid input to PATH and exits
// (scripts/fuzz.sh does this).
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <iterator>
#include <string>
#include <vector>

#include "core/error.h"
#include "formats/gguf.h"
#include "train/checkpoint.h"
#include "train/params.h"

namespace {

[[noreturn]] void broken(const char* what) {
  std::fprintf(stderr, "checkpoint_fuzz: %s\n", what);
  std::abort();
}

void write_seed(const char* path) {
  ponder::TrainConfig c{.vocab = 8, .dim = 4, .n_layers = 1, .n_heads = 2, .n_kv_heads = 1, .ffn = 8, .ctx = 16};
  ponder::TrainModel m(c);
  ponder::init_params(m, 1);
  ponder::Checkpoint ck{.kind = "sft", .config = c, .params = m.params, .adam = {}, .step = 3,
                        .run_options = "{\"kind\":\"sft\",\"lr\":0.002,\"steps\":10}", .extra = {{"ref", "x.gguf"}},
                        .tokenizer = ponder::gguf_metadata_bytes({{"tokenizer.ggml.model", {std::string("gpt2")}}})};
  ck.adam.m.assign(m.params.size(), 0.5f);
  ck.adam.v.assign(m.params.size(), 0.25f);
  ck.adam.step = 3;
  const std::string tmp = std::string(path) + ".full";
  ponder::write_checkpoint(tmp, ck);
  std::ifstream in(tmp, std::ios::binary);
  std::vector<char> b((std::istreambuf_iterator<char>(in)), {});
  std::remove(tmp.c_str());
  std::ofstream(path, std::ios::binary).write(b.data(), std::streamsize(b.size() - 8));  // without the checksum
}

}  // namespace

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  if (const char* seed = std::getenv("CHECKPOINT_FUZZ_SEED")) {
    write_seed(seed);
    std::exit(0);
  }
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::vector<uint8_t> bytes(data, data + size);
  const uint64_t sum = ponder::checkpoint_checksum(bytes);
  const auto* s = reinterpret_cast<const uint8_t*>(&sum);
  bytes.insert(bytes.end(), s, s + 8);
  try {
    const ponder::Checkpoint ck = ponder::parse_checkpoint(bytes, "<fuzz>");
    const size_t expected = ck.lora.enabled() ? ponder::LoraAdapters(ck.config, ck.lora).layout.total
                                              : ponder::ParamLayout::for_config(ck.config).total;
    if (expected != ck.params.size()) broken("parameters that do not fit the config were accepted");
    if (!ck.adam.m.empty() && (ck.adam.m.size() != ck.params.size() || ck.adam.v.size() != ck.params.size()))
      broken("AdamW moments that do not fit the parameters were accepted");
    try {
      ponder::check_run_options("<fuzz>", ck.run_options, ck.run_options);
      ponder::check_run_options("<fuzz>", ck.run_options, "{\"kind\":\"sft\",\"lr\":0.002}");
    } catch (const ponder::FormatError&) {
    }
    try {
      (void)ponder::parse_gguf(ck.tokenizer, "<fuzz tokenizer>");
    } catch (const ponder::FormatError&) {
    }
  } catch (const ponder::FormatError&) {
  }
  return 0;
}

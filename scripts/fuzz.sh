#!/usr/bin/env bash
# Builds the libFuzzer targets with ASan and UBSan and fuzzes each for a bounded time:
#  * gguf_fuzz: the GGUF reader, seeded with small hand-made files (tools/make_fuzz_seeds.py);
#  * model_fuzz: the tokenizer loader, chat-format detection and model loader on whatever the
#    reader accepts, seeded with those files, stories260K from ../shared and a small Qwen2 model;
#  * checkpoint_fuzz: the training checkpoint loader (every size checked against the model
#    config), seeded with a small valid checkpoint the target writes itself.
# Usage: scripts/fuzz.sh [OUT_DIR]   (default build/fuzz; `make fuzz` passes $(BUILD)/fuzz)
# Environment: FUZZ_SECONDS per target (default 20), CXX_FUZZ (default clang++, else clang++-14),
# JOBS (parallel compiles, default 2).
# OUT_DIR keeps the binaries, the seeds, the growing corpora (kept between runs) and, on failure,
# the crashing input (crash-*, leak-*, oom-*, timeout-*). Exits non-zero on any crash, leak or UB.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
out="${1:-build/fuzz}"
mkdir -p "$out"
out="$(cd "$out" && pwd)"
seconds="${FUZZ_SECONDS:-20}"

cxx="${CXX_FUZZ:-}"
if [ -z "$cxx" ]; then
  for c in clang++ clang++-14; do
    if command -v "$c" >/dev/null; then cxx="$c"; break; fi
  done
fi
if [ -z "$cxx" ]; then
  echo "fuzz.sh: clang++ not found (install clang and libclang-rt-dev: make deps)" >&2
  exit 1
fi

cd "$root"
echo "fuzz.sh: building $out/gguf_fuzz with $cxx" >&2
"$cxx" -std=c++20 -O1 -g -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=undefined \
  -fno-omit-frame-pointer -Isrc \
  fuzz/gguf_fuzz.cpp src/formats/gguf.cpp src/core/ggml_type.cpp src/core/mapped_file.cpp src/core/atomic_file.cpp \
  -o "$out/gguf_fuzz"

seeds="$out/seeds"
corpus="$out/corpus"
rm -rf "$seeds"
mkdir -p "$seeds" "$corpus"
python3 tools/make_fuzz_seeds.py "$seeds" "$out/gguf.dict"
stories="$root/../shared/models/stories260K.gguf"
if [ -f "$stories" ]; then
  # A real header (512 tokens, scores, types, 48 tensor infos) cut short inside the data: invalid,
  # which is fine for a seed.
  head -c 65536 "$stories" > "$seeds/stories260K-first64k.gguf"
fi

export ASAN_OPTIONS="${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=0}"
export UBSAN_OPTIONS="${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}"

# fuzz NAME CORPUS SEEDS [libFuzzer flags]: runs one target for $seconds.
fuzz() {
  local name="$1" corpus="$2" seed_dir="$3"
  shift 3
  echo "fuzz.sh: fuzzing $name for ${seconds}s (corpus $corpus)" >&2
  local status=0
  "$out/$name" "$corpus" "$seed_dir" -max_total_time="$seconds" -rss_limit_mb=4096 -artifact_prefix="$out/$name-" \
    -print_final_stats=1 "$@" || status=$?
  if [ "$status" -ne 0 ]; then
    echo "fuzz.sh: $name failed (exit $status); the input that did it is in $out/ ($name-crash-*, -leak-*, -oom-*, -timeout-*)" >&2
    echo "fuzz.sh: reproduce with: $out/$name $out/<artifact>" >&2
    exit "$status"
  fi
  echo "fuzz.sh: $name: no crash, leak or undefined behaviour in ${seconds}s" >&2
}

fuzz gguf_fuzz "$corpus" "$seeds" -timeout=10 -dict="$out/gguf.dict"

# model_fuzz: most of the library, compiled in parallel into objects, then linked.
echo "fuzz.sh: building $out/model_fuzz" >&2
objs="$out/model_obj"
rm -rf "$objs"
mkdir -p "$objs"
printf '%s\n' src/core/*.cpp src/formats/*.cpp src/model/*.cpp src/kernels/*.cpp fuzz/model_fuzz.cpp |
  xargs -P "${JOBS:-2}" -I{} sh -c '"$0" -std=c++20 -O1 -g -fsanitize=fuzzer-no-link,address,undefined \
    -fno-sanitize-recover=undefined -fno-omit-frame-pointer -fopenmp -Isrc -c "$1" -o "$2/$(echo "$1" | tr / _).o"' \
    "$cxx" {} "$objs"
"$cxx" -fsanitize=fuzzer,address,undefined -fopenmp "$objs"/*.o -lpcre2-8 -o "$out/model_fuzz"
model_seeds="$out/model_seeds"
rm -rf "$model_seeds"
mkdir -p "$model_seeds" "$out/model_corpus"
cp "$seeds"/*.gguf "$model_seeds"/
shared="$root/../shared/models"
if [ -d "$shared" ]; then
  # stories260K (a whole Llama model with its SentencePiece vocabulary); the real BPE vocabularies
  # (2-8 MB) would slow every run down, the small hand-made ones cover their loaders.
  cp "$shared/stories260K.gguf" "$model_seeds"/
  # Quantized models (llama-quantize outputs, about 1 MB): a k-quant mix, the legacy types, IQ4.
  for f in tiny-llama-kq-q4_k_m tiny-llama-kq-q2_k tiny-llama-kq-iq4_xs tiny-qwen2-kq-q3_k_m tiny-qwen2-kq-q5_k_m; do
    [ -f "$shared/kq/$f.gguf" ] && cp "$shared/kq/$f.gguf" "$model_seeds"/
  done
  # A small Qwen2 model with Q8_0 weights (the real Qwen2 test models are 16-26 MB).
  if [ -x "$root/build/ponder" ]; then
    "$root/build/ponder" init --arch qwen2 --preset qwen2-tiny --dtype q8_0 --vocab "$shared/stories260K.gguf" \
      --seed 1 -o "$model_seeds/qwen2-tiny-q8_0.gguf" >/dev/null
  fi
fi
fuzz model_fuzz "$out/model_corpus" "$model_seeds" -timeout=30 -max_len=2097152 -dict="$out/gguf.dict"

# checkpoint_fuzz: the checkpoint loader, linked with the library objects built above.
echo "fuzz.sh: building $out/checkpoint_fuzz" >&2
ck_objs="$out/checkpoint_obj"
rm -rf "$ck_objs"
mkdir -p "$ck_objs"
printf '%s\n' src/train/checkpoint.cpp src/train/params.cpp src/train/config.cpp src/train/lora.cpp fuzz/checkpoint_fuzz.cpp |
  xargs -P "${JOBS:-2}" -I{} sh -c '"$0" -std=c++20 -O1 -g -fsanitize=fuzzer-no-link,address,undefined \
    -fno-sanitize-recover=undefined -fno-omit-frame-pointer -fopenmp -Isrc -c "$1" -o "$2/$(echo "$1" | tr / _).o"' \
    "$cxx" {} "$ck_objs"
lib_objs=$(ls "$objs"/*.o | grep -v 'fuzz_model_fuzz\.cpp\.o$')
"$cxx" -fsanitize=fuzzer,address,undefined -fopenmp "$ck_objs"/*.o $lib_objs -lpcre2-8 -o "$out/checkpoint_fuzz"
ck_seeds="$out/checkpoint_seeds"
rm -rf "$ck_seeds"
mkdir -p "$ck_seeds" "$out/checkpoint_corpus"
CHECKPOINT_FUZZ_SEED="$ck_seeds/small.ck" "$out/checkpoint_fuzz" >/dev/null 2>&1
fuzz checkpoint_fuzz "$out/checkpoint_corpus" "$ck_seeds" -timeout=10

# request_fuzz: the HTTP API's request parser and streaming text splitter, linked with the library
# objects built above (the tokenizer and chat templates it needs), the decode options and the
# answer checks of the request's verifier.
echo "fuzz.sh: building $out/request_fuzz" >&2
rq_objs="$out/request_obj"
rm -rf "$rq_objs"
mkdir -p "$rq_objs"
printf '%s\n' src/server/openai_api.cpp src/decode/options.cpp src/decode/sampling.cpp src/decode/reasoning.cpp \
  src/tasks/answer.cpp src/tasks/reward.cpp fuzz/request_fuzz.cpp |
  xargs -P "${JOBS:-2}" -I{} sh -c '"$0" -std=c++20 -O1 -g -fsanitize=fuzzer-no-link,address,undefined \
    -fno-sanitize-recover=undefined -fno-omit-frame-pointer -fopenmp -Isrc -c "$1" -o "$2/$(echo "$1" | tr / _).o"' \
    "$cxx" {} "$rq_objs"
"$cxx" -fsanitize=fuzzer,address,undefined -fopenmp "$rq_objs"/*.o $lib_objs -lpcre2-8 -o "$out/request_fuzz"
rq_seeds="$out/request_seeds"
rm -rf "$rq_seeds"
mkdir -p "$rq_seeds" "$out/request_corpus"
python3 tools/make_request_seeds.py "$rq_seeds"
if [ -f "$root/../shared/models/stories260K.gguf" ]; then
  PONDER_FUZZ_MODEL="$root/../shared/models/stories260K.gguf" fuzz request_fuzz "$out/request_corpus" "$rq_seeds" -timeout=10
else
  echo "fuzz.sh: request_fuzz skipped: ../shared/models/stories260K.gguf not found" >&2
fi

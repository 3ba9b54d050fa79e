#!/usr/bin/env bash
# Builds the GGUF reader's libFuzzer target with ASan and UBSan and fuzzes it for a bounded time.
# Usage: scripts/fuzz.sh [OUT_DIR]   (default build/fuzz; `make fuzz` passes $(BUILD)/fuzz)
# Environment: FUZZ_SECONDS (default 30), CXX_FUZZ (default clang++, else clang++-14).
# OUT_DIR keeps the binary, the seeds, the growing corpus (kept between runs) and, on failure, the
# crashing input (crash-*, leak-*, oom-*, timeout-*). Exits non-zero on any crash, leak or UB.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
out="${1:-build/fuzz}"
mkdir -p "$out"
out="$(cd "$out" && pwd)"
seconds="${FUZZ_SECONDS:-30}"

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
  fuzz/gguf_fuzz.cpp src/formats/gguf.cpp src/formats/ggml_type.cpp src/core/mapped_file.cpp src/core/atomic_file.cpp \
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

echo "fuzz.sh: fuzzing for ${seconds}s (corpus $corpus)" >&2
export ASAN_OPTIONS="${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=0}"
export UBSAN_OPTIONS="${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}"
status=0
"$out/gguf_fuzz" "$corpus" "$seeds" \
  -max_total_time="$seconds" -rss_limit_mb=2048 -timeout=10 \
  -dict="$out/gguf.dict" -artifact_prefix="$out/" -print_final_stats=1 || status=$?
if [ "$status" -ne 0 ]; then
  echo "fuzz.sh: the fuzzer failed (exit $status); the input that did it is in $out/ (crash-*, leak-*, oom-*, timeout-*)" >&2
  echo "fuzz.sh: reproduce with: $out/gguf_fuzz $out/<artifact>" >&2
  exit "$status"
fi
echo "fuzz.sh: no crash, leak or undefined behaviour in ${seconds}s" >&2

#!/usr/bin/env bash
# sgemm of the working tree against that of a git revision, in one process (bench/ab/sgemm_ab.cpp,
# kept out of bench/*.cpp, the kernels benchmark's sources): the two are called alternately on the
# training step's shapes, with their bits compared.
# Usage: bench/sgemm_ab.sh [REV] [REPS]   (defaults: HEAD, 10). Exit status 1 when the bits differ.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
rev="${1:-HEAD}" reps="${2:-10}"
[[ "$reps" =~ ^[1-9][0-9]*$ ]] || { echo "sgemm_ab.sh: REPS must be a positive integer, got '$reps'" >&2; exit 1; }
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
base_src="$(git -C "$root" show "$rev:src/kernels/gemm.cpp")" ||
  { echo "sgemm_ab.sh: no src/kernels/gemm.cpp at revision '$rev'" >&2; exit 1; }
# Each build in a namespace of its own (the file opens `namespace ponder {`).
rename() { sed "s/^namespace ponder {/namespace ponder_$1 {\nusing namespace ponder;/"; }
printf '%s\n' "$base_src" | rename base > "$work/gemm_base.cpp"
rename work < "$root/src/kernels/gemm.cpp" > "$work/gemm_work.cpp"
flags=(-O3 -DNDEBUG -march=native -ffp-contract=off -fopenmp -std=c++20 -I "$root/src")
g++ "${flags[@]}" "$root/bench/ab/sgemm_ab.cpp" "$work/gemm_base.cpp" "$work/gemm_work.cpp" -o "$work/sgemm_ab"
echo "base: $rev ($(git -C "$root" rev-parse --short "$rev")), work: the working tree; $(nproc) CPUs, OMP_NUM_THREADS=${OMP_NUM_THREADS:-all}"
"$work/sgemm_ab" "$reps"

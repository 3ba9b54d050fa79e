#!/usr/bin/env bash
# ponder's training step against PyTorch's on the same model, batch and threads, run alternately
# so that both see the same machine load. Prints each run and the median ratio.
# Usage: bench/train_compare.sh [ROUNDS] [THREADS] [PRESET]   (defaults: 3 rounds, 2 threads, 5m)
# Needs a build (make build) and Debian's python3-torch (apt-get install python3-torch; not a build dependency).
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
rounds="${1:-3}" threads="${2:-2}" preset="${3:-5m}"
ponder="$root/build/ponder"
[ -x "$ponder" ] || { echo "train_compare.sh: $ponder not found (run make build)" >&2; exit 1; }
field() { /usr/bin/python3 -c "import json, sys; print(json.load(sys.stdin)['$1'])"; }
ratios=()
for ((i = 1; i <= rounds; i++)); do
  p=$("$ponder" bench --train --preset "$preset" --batch 16 --ctx 256 -t "$threads" -r 4 --json | field tok_s)
  t=$(OMP_NUM_THREADS="$threads" /usr/bin/python3 "$root/bench/train_torch.py" --preset "$preset" --threads "$threads" \
      --steps 3 --json | field tok_s)
  r=$(/usr/bin/python3 -c "print(f'{$p / $t:.2f}')")
  ratios+=("$r")
  printf 'round %d: ponder %6.0f tok/s   pytorch %6.0f tok/s   ratio %s\n' "$i" "$p" "$t" "$r"
done
median=$(printf '%s\n' "${ratios[@]}" | sort -n | awk '{a[NR] = $1} END {print a[int((NR + 1) / 2)]}')
echo "median ratio ponder / pytorch: $median (preset $preset, batch 16 x 256, $threads threads)"

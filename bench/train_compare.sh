#!/usr/bin/env bash
# ponder's training step against PyTorch's on the same model, batch and threads, run alternately
# so that both see the same machine load. Prints each run and the median ratio.
# Usage: bench/train_compare.sh [ROUNDS] [THREADS] [PRESET]   (defaults: 3 rounds, 2 threads, 5m)
#   PRESET 5m: batch 16 x 256, ponder's own model.
#   PRESET qwen2-0.5b: batch 4 x 128 on the Qwen2-0.5B shape; MODEL=FILE.gguf names ponder's copy of
#   it (`build/ponder init --preset qwen2-0.5b --dtype f32 -o FILE.gguf`).
#   LORA_RANK=R: both train LoRA adapters of rank R on the frozen base instead of every weight.
# Needs a build (make build) and Debian's python3-torch (apt-get install python3-torch; not a build dependency).
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
rounds="${1:-3}" threads="${2:-2}" preset="${3:-5m}"
[[ "$rounds" =~ ^[1-9][0-9]*$ && "$threads" =~ ^[1-9][0-9]*$ ]] ||
  { echo "train_compare.sh: ROUNDS and THREADS must be positive integers, got '$rounds' and '$threads'" >&2; exit 1; }
ponder="$root/build/ponder"
[ -x "$ponder" ] || { echo "train_compare.sh: $ponder not found (run make build)" >&2; exit 1; }
case "$preset" in
  5m) p_model=(--preset 5m) shape=(--batch 16 --ctx 256) reps=4 ;;
  qwen2-0.5b)
    [ -f "${MODEL:-}" ] || { echo "train_compare.sh: qwen2-0.5b needs MODEL=FILE.gguf (got '${MODEL:-}')" >&2; exit 1; }
    p_model=(-m "$MODEL") shape=(--batch 4 --ctx 128) reps=3 ;;
  *) echo "train_compare.sh: preset must be 5m or qwen2-0.5b, got '$preset'" >&2; exit 1 ;;
esac
lora=()
[ -n "${LORA_RANK:-}" ] && lora=(--lora-rank "$LORA_RANK")
field() { /usr/bin/python3 -c "import json, sys; print(json.load(sys.stdin)['$1'])"; }
ratios=()
for ((i = 1; i <= rounds; i++)); do
  p=$("$ponder" bench --train "${p_model[@]}" "${shape[@]}" -t "$threads" -r "$reps" "${lora[@]}" --json | field tok_s)
  t=$(OMP_NUM_THREADS="$threads" /usr/bin/python3 "$root/bench/train_torch.py" --preset "$preset" "${shape[@]}" \
      --threads "$threads" --steps 3 "${lora[@]}" --json | field tok_s)
  r=$(/usr/bin/python3 -c "print(f'{$p / $t:.2f}')")
  ratios+=("$r")
  printf 'round %d: ponder %6.1f tok/s   pytorch %6.1f tok/s   ratio %s\n' "$i" "$p" "$t" "$r"
done
median=$(printf '%s\n' "${ratios[@]}" | sort -n | awk '{a[NR] = $1} END {print a[int((NR + 1) / 2)]}')
echo "median ratio ponder / pytorch: $median (preset $preset, ${shape[*]}, ${lora[*]:-full fine-tuning}, $threads threads)"

#!/usr/bin/env bash
# Data-parallel training under mpirun: the per-step time of `ponder train sft` and `train grpo`
# split into rollout, compute and communication for R = 1, 2, 4 ranks on this machine (ranks
# share its cores, oversubscribed when R exceeds them: no speedup is expected here), the bytes
# each rank sends per step, and a projection for R machines over a 10 Gbit/s link from the
# measured one-rank compute time and the all-reduce volume (train/dist.h):
#   step(R) = compute(1) / R + 2 (R-1)/R x gradient bytes / link bandwidth  (one micro-batch per rank).
# Usage: bench/train_mpi.sh [PRESET] [STEPS]   (defaults: 5m, 6 steps; needs make build and Open MPI)
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
preset="${1:-5m}" steps="${2:-6}"
ponder="$root/build/ponder"
[ -x "$ponder" ] || { echo "train_mpi.sh: $ponder not found (run make build)" >&2; exit 1; }
command -v mpirun >/dev/null || { echo "train_mpi.sh: no mpirun (scripts/install-deps.sh installs Open MPI)" >&2; exit 1; }
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OMPI_MCA_btl_vader_single_copy_mechanism=none
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

# The GRPO policy: the preset after a short SFT.
"$ponder" train sft --task arith --preset "$preset" --steps 20 --batch 16 --lr 3e-3 --eval-count 0 --quiet \
  --out "$work/base" >/dev/null
params=$("$ponder" info -m "$work/base/model.gguf" | sed -n 's/^tensors:.*parameters (\([0-9]*\)).*/\1/p')

run() {  # run NAME RANKS ARGS...
  local name="$1" ranks="$2"; shift 2
  if [ "$ranks" = 1 ]; then "$ponder" "$@" --out "$work/$name" >/dev/null
  else mpirun -np "$ranks" --oversubscribe "$ponder" "$@" --out "$work/$name" >/dev/null; fi
}

summary() {  # summary KIND NAME RANKS: mean over the steps after the first
  /usr/bin/python3 - "$1" "$work/$2/metrics.jsonl" "$3" <<'EOF'
import json, sys
kind, path, ranks = sys.argv[1], sys.argv[2], int(sys.argv[3])
rows = [json.loads(l) for l in open(path) if '"step"' in l and ('loss' in l)]
rows = rows[1:] if len(rows) > 1 else rows
mean = lambda k: sum(r.get(k, 0.0) for r in rows) / len(rows)
comm, mb = mean('comm_seconds'), mean('comm_bytes') / 1e6
if kind == 'sft':
    step = mean('step_seconds'); roll = 0.0; compute = step - comm
else:
    roll, compute = mean('rollout_seconds'), mean('train_seconds'); step = roll + compute + comm
print(f"{kind:5s} R={ranks}  step {step:7.3f} s  rollout {roll:7.3f} s  compute {compute:7.3f} s  "
      f"comm {comm:7.3f} s  sent {mb:8.2f} MB/step/rank")
print(f"#{kind} {ranks} {roll + compute}", file=sys.stderr)
EOF
}

echo "preset $preset, $(nproc) cores, $params parameters ($(/usr/bin/python3 -c "print(f'{$params * 4 / 1e6:.1f}')") MB of f32 gradient)"
sft="train sft --task arith --preset $preset --steps $steps --batch 8 --accum 4 --eval-count 0 --quiet"
grpo="train grpo --task arith --model $work/base/model.gguf --steps $steps --prompts-per-step 8 --num-generations 4
      --micro-batch 8 -n 32 --eval-count 0 --quiet"
compute1=()
for kind in sft grpo; do
  for ranks in 1 2 4; do
    if [ "$kind" = sft ]; then run "sft$ranks" "$ranks" $sft; else run "grpo$ranks" "$ranks" $grpo; fi
    summary "$kind" "$kind$ranks" "$ranks" 2>>"$work/compute.txt"
  done
done

echo
echo "projection: R machines like this one, one rank each, 10 Gbit/s link (1.25 GB/s), one micro-batch per rank:"
/usr/bin/python3 - "$work/compute.txt" "$params" <<'EOF'
import sys
lines = [l.split() for l in open(sys.argv[1]) if l.startswith('#')]
params = int(sys.argv[2])
grad = params * 4.0
for kind in ('sft', 'grpo'):
    c1 = [float(l[2]) for l in lines if l[0] == '#' + kind and l[1] == '1'][0]
    row = []
    for R in (1, 2, 4, 8, 16):
        comm = 2 * (R - 1) / R * grad / 1.25e9
        step = c1 / R + comm
        row.append(f"R={R}: {step:.3f} s ({c1 / step:.2f}x)")
    print(f"  {kind:5s} " + "  ".join(row))
EOF

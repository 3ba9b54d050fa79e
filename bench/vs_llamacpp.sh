#!/usr/bin/env bash
# ponder bench against llama-bench on the same GGUF file, the same prompt/generation lengths and
# threads, run alternately so that both see the same machine. Prints each round and the median
# ratios (ponder / llama.cpp) for prompt processing (pp) and generation (tg).
#
# Usage: bench/vs_llamacpp.sh MODEL.gguf [ROUNDS] [THREADS] [N_PROMPT] [N_GEN]
#   (defaults: 3 rounds, 2 threads, pp512, tg128)
# llama-bench is found as $LLAMA_BENCH, else on PATH (../shared/tools/build-llamacpp.sh builds the
# reference release). Where llama-batched-bench sits beside it (or is $LLAMA_BATCHED_BENCH), each
# round also times 8 paths sharing a 64-token prompt: ponder bench --paths 1,8 against
# llama-batched-bench -npl 1,8 (the step time of 8 paths over that of one, and tok/s over all 8). A Qwen2-1.5B-shaped Q4_K_M file to run it on, about 1.1 GB:
#   build/ponder init --preset qwen2-1.5b --dtype f16 -o /tmp/q15-f16.gguf
#   build/ponder quantize /tmp/q15-f16.gguf /tmp/q15-q4_k_m.gguf Q4_K_M
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
model="${1:?usage: bench/vs_llamacpp.sh MODEL.gguf [ROUNDS] [THREADS] [N_PROMPT] [N_GEN]}"
rounds="${2:-3}" threads="${3:-2}" n_prompt="${4:-512}" n_gen="${5:-128}"
ponder="$root/build/ponder"
llama_bench="${LLAMA_BENCH:-$(command -v llama-bench || true)}"
[ -x "$ponder" ] || { echo "vs_llamacpp.sh: $ponder not found (run make build)" >&2; exit 1; }
[ -n "$llama_bench" ] && [ -x "$llama_bench" ] ||
  { echo "vs_llamacpp.sh: llama-bench not found (set LLAMA_BENCH=/path/to/llama-bench)" >&2; exit 1; }
[ -f "$model" ] || { echo "vs_llamacpp.sh: model file '$model' not found" >&2; exit 1; }

batched_bench="${LLAMA_BATCHED_BENCH:-$(dirname "$llama_bench")/llama-batched-bench}"
py() { /usr/bin/python3 -c "$1"; }
pp_ratios=() tg_ratios=()
for ((i = 1; i <= rounds; i++)); do
  p=$("$ponder" bench -m "$model" -t "$threads" -p "$n_prompt" -n "$n_gen" -r 2 --json)
  l=$("$llama_bench" -m "$model" -t "$threads" -p "$n_prompt" -n "$n_gen" -r 2 -o json 2>/dev/null)
  read -r ppp ptg bound <<<"$(py "import json, sys; d = json.load(sys.stdin)
print(d['pp_tok_s'], d['tg_tok_s'], d['tg_bound_tok_s'])" <<<"$p")"
  read -r lpp ltg <<<"$(py "import json, sys; rows = json.load(sys.stdin)
pp = [r['avg_ts'] for r in rows if r['n_prompt'] > 0 and r['n_gen'] == 0]
tg = [r['avg_ts'] for r in rows if r['n_gen'] > 0 and r['n_prompt'] == 0]
print(pp[0], tg[0])" <<<"$l")"
  rpp=$(py "print(f'{$ppp / $lpp:.2f}')") rtg=$(py "print(f'{$ptg / $ltg:.2f}')")
  pp_ratios+=("$rpp") tg_ratios+=("$rtg")
  printf 'round %d: pp%d ponder %7.1f  llama.cpp %7.1f tok/s (%sx)   tg%d ponder %6.1f  llama.cpp %6.1f tok/s (%sx, ponder at %.0f%% of the bandwidth bound)\n' \
    "$i" "$n_prompt" "$ppp" "$lpp" "$rpp" "$n_gen" "$ptg" "$ltg" "$rtg" "$(py "print(100 * $ptg / $bound)")"
  if [ -x "$batched_bench" ]; then
    P8=$("$ponder" bench -m "$model" -t "$threads" --paths 1,8 -p 64 -n 16 -r 2 --json) \
      L8=$("$batched_bench" -m "$model" -t "$threads" -npp 64 -ntg 16 -npl 1,8 -c 2048 --output-format jsonl 2>/dev/null) \
      ROUND=$i py "import json, os
p = {r['paths']: r for r in json.loads(os.environ['P8'])}
l = {r['pl']: r for r in map(json.loads, os.environ['L8'].splitlines()) if r}
print(f'round {os.environ[\"ROUND\"]}: 8 paths, 64-token prompt: ponder {p[8][\"step_ms\"] / p[1][\"step_ms\"]:.2f}x the one-path step'
      f' ({p[8][\"tok_s\"]:.1f} tok/s)   llama.cpp {l[8][\"t_tg\"] / l[1][\"t_tg\"]:.2f}x ({l[8][\"speed_tg\"]:.1f} tok/s)')"
  fi
done
median() { printf '%s\n' "$@" | sort -n | awk '{a[NR] = $1} END {print a[int((NR + 1) / 2)]}'; }
echo "median ratio ponder / llama.cpp: pp$n_prompt $(median "${pp_ratios[@]}")x, tg$n_gen $(median "${tg_ratios[@]}")x" \
  "($(basename "$model"), $threads threads)"

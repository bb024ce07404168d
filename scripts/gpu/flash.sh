#!/usr/bin/env bash
# The flash attention kernel (flash_prefill.rs) in one call, default and each variant knob
# (`LLAVA_FLASH_ASYNC=0`: one stage, no cp.async; `LLAVA_FLASH_LDMATRIX=0`: register loads):
# its checks against the CPU (`cuda-smoke --kernels-only`), its time against the materialised
# path at 3072 causal positions (Mistral's and the 72B's heads), then the 7B bench, and last the
# LLaVA smoke with the kernel on.
# Usage: scripts/gpu/flash.sh [VARIANT...]   (default: "" LLAVA_FLASH_ASYNC=0; logs in $OUT)
set -uo pipefail
source "$(dirname "$0")/env.sh"
export RUST_BACKTRACE=1
[ $# -eq 0 ] && set -- "" LLAVA_FLASH_ASYNC=0
for variant in "$@"; do
  tag=${variant:-default}; tag=${tag//[=,]/_}
  start=$SECONDS
  env $variant timeout 150 /tmp/bin/xtask cuda-smoke --kernels-only > "$OUT/smoke_kernels_$tag.log" 2>&1
  echo "== [$tag] cuda-smoke --kernels-only: exit $? after $((SECONDS - start)) s"
  grep -E "flash|rror|panick|smoke" "$OUT/smoke_kernels_$tag.log" | head -20
  grep -q "cuda smoke: ok" "$OUT/smoke_kernels_$tag.log" || { tail -30 "$OUT/smoke_kernels_$tag.log"; continue; }
  for heads in 32,8,128 64,8,128; do
    echo "== [$tag] prefill attention, heads $heads"
    env $variant timeout 90 /tmp/bin/xtask bench-ops --heads "$heads" --prefill 3072 --iters 10 --flash "" 2>&1 | grep '^{.*prefill'
  done
  env $variant timeout 60 /tmp/bin/xtask bench --config benches/configs/llava-v1.6-mistral-7b-hf \
    --batch 1 --max-new-tokens 64 >> "$OUT/results.jsonl" 2> "$OUT/bench_$tag.log"
  echo "== [$tag] 7B bench: exit $?"; grep -E "^batch 1:|rror|panick" "$OUT/bench_$tag.log" | tail -2
done
start=$SECONDS
timeout 120 /tmp/bin/xtask cuda-smoke --llava-only > "$OUT/smoke_llava.log" 2>&1
echo "== cuda-smoke --llava-only: exit $? after $((SECONDS - start)) s"
grep -E "greedy|rror|panick|smoke" "$OUT/smoke_llava.log" | sed 's/ equal to transformers.*//' | head -12

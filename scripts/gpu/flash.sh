#!/usr/bin/env bash
# The flash attention kernel (flash_prefill.rs) in one call: its checks against the CPU
# (`cuda-smoke --kernels-only`), its time against the materialised path at 3072 causal positions
# (Mistral's and the 72B's heads), then the 7B bench with it on in the decoder, in the vision
# tower, in both, and off.
# Usage: scripts/gpu/flash.sh   (logs and results.jsonl in $OUT)
set -uo pipefail
source "$(dirname "$0")/env.sh"
export RUST_BACKTRACE=1
start=$SECONDS
timeout 150 /tmp/bin/xtask cuda-smoke --kernels-only > "$OUT/smoke_kernels.log" 2>&1
echo "== cuda-smoke --kernels-only: exit $? after $((SECONDS - start)) s"
grep -E "flash|rror|panick|smoke" "$OUT/smoke_kernels.log" | head -20
grep -q "cuda smoke: ok" "$OUT/smoke_kernels.log" || { tail -40 "$OUT/smoke_kernels.log"; exit 1; }
for heads in 32,8,128 64,8,128; do
  echo "== prefill attention, heads $heads"
  timeout 90 /tmp/bin/xtask bench-ops --heads "$heads" --prefill 3072 --iters 10 --flash "" 2>&1 | grep '^{.*prefill'
done
for on in none flash_prefill flash_vision flash_prefill,flash_vision; do
  LLAVA_OPS_ON=$on timeout 60 /tmp/bin/xtask bench --config benches/configs/llava-v1.6-mistral-7b-hf \
    --batch 1 --max-new-tokens 64 >> "$OUT/results.jsonl" 2> "$OUT/bench_${on//,/_}.log"
  echo "== 7B bench LLAVA_OPS_ON=$on: exit $?"; grep -E "^batch 1:|rror|panick" "$OUT/bench_${on//,/_}.log" | tail -2
done
start=$SECONDS
LLAVA_OPS_ON=flash_prefill,flash_vision timeout 120 /tmp/bin/xtask cuda-smoke --llava-only > "$OUT/smoke_llava_flash.log" 2>&1
echo "== cuda-smoke --llava-only with flash_prefill,flash_vision: exit $? after $((SECONDS - start)) s"
grep -E "greedy|rror|panick|smoke" "$OUT/smoke_llava_flash.log" | sed 's/ equal to transformers.*//' | head -12

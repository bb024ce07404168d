#!/usr/bin/env bash
# The GEMV kernel (LLAVA_OPS_ON=gemv) in one call: cuda-smoke with it on (it checks the kernel
# against the CPU and the models' greedy tokens), the decode GEMVs of the 7B and 72B shapes
# (burn's default, the routed cubek kernel, ours), the 7B bench without and with it, and on a
# machine of two GPUs the 72B shape split over both with it (and with decode_attention).
# Usage: scripts/gpu/gemv.sh   (logs in $OUT)
set -uo pipefail
source "$(dirname "$0")/env.sh"
export RUST_BACKTRACE=1
start=$SECONDS
LLAVA_OPS_ON=gemv timeout 200 /tmp/bin/xtask cuda-smoke > "$OUT/smoke_gemv.log" 2>&1
echo "== cuda-smoke with gemv: exit $? after $((SECONDS - start)) s"
grep -E "gemv|greedy|rror|panick|smoke" "$OUT/smoke_gemv.log" | sed 's/ equal to transformers.*//' | head -30
for heads in 32,8,128 64,64,128; do
  echo "== decode GEMVs, heads $heads"
  timeout 60 /tmp/bin/xtask bench-ops --heads "$heads" --context 3072 --iters 100 2>&1 | grep gemv
done
for on in none gemv; do
  LLAVA_OPS_ON=$on timeout 90 /tmp/bin/xtask bench --config benches/configs/llava-v1.6-mistral-7b-hf \
    --batch 1,4 --max-new-tokens 128 >> "$OUT/results.jsonl" 2> "$OUT/bench7b_$on.log"
  echo "== 7B bench LLAVA_OPS_ON=$on: exit $?"; grep -E "^batch [14]:|rror|panick" "$OUT/bench7b_$on.log" | tail -3
done
if [ "$(nvidia-smi --query-gpu=index --format=csv,noheader | wc -l)" -ge 2 ]; then
  for on in gemv gemv,decode_attention; do
    echo "== 72B split, LLAVA_OPS_ON=$on"
    LLAVA_OPS_ON=$on TIMEOUT=150 "$(dirname "$0")/bench.sh" ours+llava-next-72b-hf+auto+1+128 2>&1 | grep -E "^==|^batch 1:|rror|panick"
  done
fi

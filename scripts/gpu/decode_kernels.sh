#!/usr/bin/env bash
# The decode kernels in one call: cuda-smoke (it checks the GEMV and decode-attention kernels
# against the CPU, then the models' greedy tokens), their timings on the 7B and 72B shapes, and
# the 7B bench (and on two GPUs the 72B shape split over both) without and with
# LLAVA_OPS_ON=decode_attention.
# Usage: scripts/gpu/decode_kernels.sh   (logs in $OUT)
set -uo pipefail
source "$(dirname "$0")/env.sh"
export RUST_BACKTRACE=1
start=$SECONDS
timeout 200 /tmp/bin/xtask cuda-smoke > "$OUT/smoke.log" 2>&1
echo "== cuda-smoke: exit $? after $((SECONDS - start)) s"
grep -E "gemv|decode attention|greedy|rror|panick|smoke" "$OUT/smoke.log" | sed 's/ equal to transformers.*//' | head -40
for heads in 32,8,128 64,64,128 56,8,128; do
  echo "== decode ops, heads $heads (default path, then with the attention kernel)"
  timeout 60 /tmp/bin/xtask bench-ops --heads "$heads" --context 3072 --iters 100 2>&1 | grep -E "attention_matmul|gemv_routed|gemv_kernel"
  LLAVA_OPS_ON=decode_attention timeout 60 /tmp/bin/xtask bench-ops --heads "$heads" --context 3072 --iters 100 2>&1 | grep -E "attention_matmul"
done
for on in none decode_attention; do
  LLAVA_OPS_ON=$on timeout 90 /tmp/bin/xtask bench --config benches/configs/llava-v1.6-mistral-7b-hf \
    --batch 1,4 --max-new-tokens 128 >> "$OUT/results.jsonl" 2> "$OUT/bench7b_$on.log"
  echo "== 7B bench LLAVA_OPS_ON=$on: exit $?"; grep -E "^batch [14]:|rror|panick" "$OUT/bench7b_$on.log" | tail -3
done
if [ "$(nvidia-smi --query-gpu=index --format=csv,noheader | wc -l)" -ge 2 ]; then
  for on in none decode_attention; do
    echo "== 72B split, LLAVA_OPS_ON=$on"
    LLAVA_OPS_ON=$on TIMEOUT=150 "$(dirname "$0")/bench.sh" ours+llava-next-72b-hf+auto+1+128 2>&1 | grep -E "^==|^batch 1:|rror|panick"
  done
fi

#!/usr/bin/env bash
# The decode kernels in one call: cuda-smoke (it checks the GEMV, fused gate/up and
# decode-attention kernels, then the models' greedy tokens), the decode ops on the 7B, 72B and
# 34B shapes (bench-ops), and the 7B bench (on two GPUs also the 72B shape split over both)
# once per LLAVA_OPS_ON value given; on two GPUs last the 72B and 34B splits with one recorded
# graph a device (LLAVA_GRAPH_SPLIT=1).
# Usage: scripts/gpu/decode_kernels.sh [ON...]   (default: none gemv_silu gemv_qkv gemv_silu,gemv_qkv; logs in $OUT)
#   e.g. scripts/gpu/decode_kernels.sh none gemv_silu
set -uo pipefail
source "$(dirname "$0")/env.sh"
export RUST_BACKTRACE=1
[ $# -eq 0 ] && set -- none gemv_silu gemv_qkv gemv_silu,gemv_qkv
start=$SECONDS
timeout 200 /tmp/bin/xtask cuda-smoke > "$OUT/smoke.log" 2>&1
echo "== cuda-smoke: exit $? after $((SECONDS - start)) s"
grep -E "gemv|decode attention|greedy|rror|panick|smoke" "$OUT/smoke.log" | sed 's/ equal to transformers.*//' | head -40
for heads in 32,8,128 64,64,128 56,8,128; do
  echo "== decode ops, heads $heads"
  timeout 60 /tmp/bin/xtask bench-ops --heads "$heads" --context 3072 --iters 100 2>&1 | grep -E "attention_matmul|gemv_routed|gemv_kernel|mlp_|qkv_"
done
for on in "$@"; do
  LLAVA_OPS_ON=$on timeout 90 /tmp/bin/xtask bench --config benches/configs/llava-v1.6-mistral-7b-hf \
    --batch 1,4 --max-new-tokens 256 >> "$OUT/results.jsonl" 2> "$OUT/bench7b_$on.log"
  echo "== 7B bench LLAVA_OPS_ON=$on: exit $?"; grep -E "^batch [14]:|rror|panick" "$OUT/bench7b_$on.log" | tail -3
done
if [ "$(nvidia-smi --query-gpu=index --format=csv,noheader | wc -l)" -ge 2 ]; then
  for on in "$@"; do
    echo "== 72B split, LLAVA_OPS_ON=$on"
    LLAVA_OPS_ON=$on TIMEOUT=150 "$(dirname "$0")/bench.sh" ours+llava-next-72b-hf+auto+1+128 2>&1 | grep -E "^==|^batch 1:|rror|panick"
  done
  echo "== 72B and 34B split, one recorded graph a device (LLAVA_GRAPH_SPLIT=1)"
  LLAVA_GRAPH_SPLIT=1 TIMEOUT=150 "$(dirname "$0")/bench.sh" ours+llava-next-72b-hf+auto+1+128 \
    ours+llava-v1.6-34b-hf+auto+1+128 2>&1 | grep -E "^==|^batch 1:|rror|panick"
fi

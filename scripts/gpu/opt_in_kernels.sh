#!/usr/bin/env bash
# The opt-in kernels (LLAVA_OPS_ON, docs/cuda.md) in one call, so a session can decide which to
# make the default: cuda-smoke (it checks each of our kernels against the CPU or the path it replaces),
# their timings against the default path, and the 7B bench with each switched on.
# Usage: [SKIP_SMOKE=1] scripts/gpu/opt_in_kernels.sh [SHAPE]   (default llava-v1.6-mistral-7b-hf); logs in $OUT
# (SKIP_SMOKE=1 when decode_kernels.sh has just run the full cuda-smoke; the fused decode kernels
# are A/B-timed there.)
set -uo pipefail
source "$(dirname "$0")/env.sh"
shape=${1:-llava-v1.6-mistral-7b-hf}
export RUST_BACKTRACE=1
if [ "${SKIP_SMOKE:-0}" != 1 ]; then
  start=$SECONDS
  timeout 200 /tmp/bin/xtask cuda-smoke > "$OUT/smoke.log" 2>&1
  echo "== cuda-smoke: exit $? after $((SECONDS - start)) s"
  grep -E "greedy|decode attention|flash prefill|rror|panick|smoke" "$OUT/smoke.log" | sed 's/ equal to transformers.*//' | head -40
fi
start=$SECONDS
ALL=flash_prefill,flash_vision,gemv_silu,gemv_qkv,blas_async
LLAVA_OPS_ON=$ALL timeout 120 /tmp/bin/xtask cuda-smoke --llava-only \
  > "$OUT/smoke_opt_in.log" 2>&1
echo "== cuda-smoke --llava-only, all opt-in kernels on: exit $? after $((SECONDS - start)) s"
grep -E "greedy|rror|panick|smoke" "$OUT/smoke_opt_in.log" | sed 's/ equal to transformers.*//' | head -12
for on in blas_async flash_prefill,flash_vision; do
  LLAVA_OPS_ON=$on timeout 120 /tmp/bin/xtask cuda-smoke --llava-only > "$OUT/smoke_$on.log" 2>&1
  echo "== cuda-smoke --llava-only, LLAVA_OPS_ON=$on: exit $?"
  grep -E "BF16 on CUDA|rror|panick|smoke" "$OUT/smoke_$on.log" | sed 's/ equal to transformers.*//' | head -6
done
echo "== decode ops (GEMV, fused MLP half, merged q/k/v, attention)"
timeout 60 /tmp/bin/xtask bench-ops --heads 32,8,128 --context 3072 --iters 200 2>&1 | grep -E "attention_matmul|gemv_kernel|mlp_|qkv_"
echo "== prefill attention (ours, our flash kernel, cubek's flash in f16); vision tower's shape"
timeout 90 /tmp/bin/xtask bench-ops --heads 32,8,128 --prefill 3072 --iters 10 --flash "4,1,1" 2>&1 | grep '^{'
for on in none flash_prefill flash_vision blas_async blas_async,flash_prefill,flash_vision $ALL; do
  LLAVA_OPS_ON=$on timeout 60 /tmp/bin/xtask bench --config "benches/configs/$shape" \
    --batch 1 --max-new-tokens 256 >> "$OUT/results.jsonl" 2> "$OUT/bench_$on.log"
  echo "== bench LLAVA_OPS_ON=$on: exit $?"; grep -E "^batch 1:|rror|panick" "$OUT/bench_$on.log" | tail -2
done
echo "== prompt attention in chunks of up to 1 GiB of scores instead of 256 MiB"
LLAVA_ATTN_SCORE_MIB=1024 timeout 60 /tmp/bin/xtask bench --config "benches/configs/$shape" \
  --batch 1 --max-new-tokens 32 2> "$OUT/bench_chunks_1g.log" >> "$OUT/results.jsonl"
grep -E "^batch 1:|rror|panick" "$OUT/bench_chunks_1g.log" | tail -2

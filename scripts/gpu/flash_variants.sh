#!/usr/bin/env bash
# The flash kernel's variant knobs in one call (flash_prefill.rs: `LLAVA_FLASH_ORDER=heavy`
# heaviest causal blocks first, `LLAVA_FLASH_FUSED=1` the scale fused into the exponent,
# `LLAVA_FLASH_BK` keys a step, `LLAVA_FLASH_BQ` queries a cube): the full cuda-smoke on the
# default, the kernel checks against the CPU under each variant, each variant's time on the 7B's
# causal prompt (2958 positions; 32/8 heads, then the 72B's 64/8), and last 7B first-token
# samples alternating the default, $BEST, cuBLAS on cubecl's stream and both.
# Usage: BEST=LLAVA_FLASH_ORDER=heavy,LLAVA_FLASH_FUSED=1 scripts/gpu/flash_variants.sh [VARIANT...]
#   VARIANT: environment assignments joined by commas ("" is the default). Logs in $OUT.
set -uo pipefail
source "$(dirname "$0")/env.sh"
export RUST_BACKTRACE=1
[ $# -eq 0 ] && set -- "" LLAVA_FLASH_ORDER=heavy LLAVA_FLASH_FUSED=1 \
  LLAVA_FLASH_ORDER=heavy,LLAVA_FLASH_FUSED=1 LLAVA_FLASH_BK=32 \
  LLAVA_FLASH_BK=32,LLAVA_FLASH_ORDER=heavy,LLAVA_FLASH_FUSED=1 \
  LLAVA_FLASH_BK=128,LLAVA_FLASH_ORDER=heavy,LLAVA_FLASH_FUSED=1 \
  LLAVA_FLASH_BQ=128,LLAVA_FLASH_ORDER=heavy,LLAVA_FLASH_FUSED=1
BEST=${BEST:-LLAVA_FLASH_ORDER=heavy,LLAVA_FLASH_FUSED=1}
# PART=kernels: the smokes and the kernel times; PART=model: the cuBLAS stream and first tokens.
PART=${PART:-kernels}

if [ "$PART" = kernels ]; then
start=$SECONDS
timeout 240 /tmp/bin/xtask cuda-smoke > "$OUT/smoke_full.log" 2>&1
echo "== cuda-smoke (default): exit $? after $((SECONDS - start)) s"
grep -E "rror|panick|smoke:|FAIL|mismatch" "$OUT/smoke_full.log" | head -10
# The kernel checks against the CPU under every knob at once (two sets).
for variant in ${SMOKE_VARIANTS:-LLAVA_FLASH_ORDER=heavy,LLAVA_FLASH_FUSED=1,LLAVA_FLASH_BK=32 \
  LLAVA_FLASH_ORDER=heavy,LLAVA_FLASH_FUSED=1,LLAVA_FLASH_BK=128,LLAVA_FLASH_BQ=128}; do
  tag=${variant//[=,]/_}
  read -r -a vars <<< "${variant//,/ }"
  start=$SECONDS
  env "${vars[@]}" timeout 150 /tmp/bin/xtask cuda-smoke --kernels-only > "$OUT/smoke_$tag.log" 2>&1
  echo "== [$variant] cuda-smoke --kernels-only: exit $? after $((SECONDS - start)) s"
  grep -E "flash|rror|panick|smoke:" "$OUT/smoke_$tag.log" | head -8
done
for variant in "$@"; do
  read -r -a vars <<< "${variant//,/ }"
  for heads in ${HEADS:-32,8,128 64,8,128}; do
    env "${vars[@]}" timeout 90 /tmp/bin/xtask bench-ops --heads "$heads" --prefill 2958 \
      --iters 20 --flash "" 2>&1 | grep '^{.*prefill_attention_flash' \
      | sed "s/^{/{\"variant\": \"$variant\", /" | tee -a "$OUT/flash.jsonl"
  done
done
exit 0
fi

# cuBLAS on cubecl's own stream (LLAVA_OPS_ON=blas_stream): the checks with every product on
# cuBLAS and each one compared with cubek's (LLAVA_CUBLAS_CHECK=1), then a 7B prompt checked.
echo "== CUPTI: $(readlink /tmp/bin/cupti/libcupti.so)"
start=$SECONDS
LLAVA_OPS_ON=blas_stream LLAVA_CUBLAS_MIN_MFLOP=0 LLAVA_CUBLAS_CHECK=1 timeout 200 /tmp/bin/xtask cuda-smoke \
  > "$OUT/smoke_blas_stream.log" 2>&1
echo "== cuda-smoke blas_stream: exit $? after $((SECONDS - start)) s; $(grep -c 'cuBLAS check' "$OUT/smoke_blas_stream.log") check lines"
grep -E "rror|panick|smoke:|llava-ops|cuBLAS check" "$OUT/smoke_blas_stream.log" | head -8
[ -n "${SKIP_CHECK:-}" ] || LLAVA_OPS_ON=blas_stream LLAVA_CUBLAS_CHECK=1 timeout 120 /tmp/bin/xtask bench \
  --config benches/configs/llava-v1.6-mistral-7b-hf --batch 1 --max-new-tokens 2 > /dev/null 2> "$OUT/bench_check.log"
echo "== 7B blas_stream checked: exit $?; $(grep -c 'cuBLAS check' "$OUT/bench_check.log") check lines"
grep -E "rror|panick|llava-ops|cuBLAS check" "$OUT/bench_check.log" | head -5

ROUNDS=${ROUNDS:-2} "$(dirname "$0")/ttft_ab.sh" "" LLAVA_OPS_ON=blas_stream "$BEST" \
  "$BEST,LLAVA_OPS_ON=blas_stream"

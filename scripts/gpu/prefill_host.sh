#!/usr/bin/env bash
# How much of the 7B first token is host time (issue 5), in one call: the bench at batch 1 as
# is, with the routed ops' host launch cost tabled (LLAVA_OPS_STATS=1), with cuBLAS ordered on
# the GPU instead of by host waits (blas_async), without the output zero fill (blas_no_fill),
# without cuBLAS at all (every product on cubecl's stream: no round trips, slower kernels), and
# at batch 4 (where the GPU is kept busy: its first token per prompt bounds the GPU work).
# Usage: scripts/gpu/prefill_host.sh [SHAPE]   (default llava-v1.6-mistral-7b-hf; logs in $OUT)
set -uo pipefail
source "$(dirname "$0")/env.sh"
shape=${1:-llava-v1.6-mistral-7b-hf}
export RUST_BACKTRACE=1
for variant in "" LLAVA_OPS_STATS=1 LLAVA_OPS_ON=blas_async LLAVA_OPS_ON=blas_no_fill LLAVA_CUBLAS=0; do
  tag=${variant:-default}; tag=${tag//[=,]/_}
  env $variant timeout 90 /tmp/bin/xtask bench --config "benches/configs/$shape" --batch 1 \
    --max-new-tokens 16 >> "$OUT/results.jsonl" 2> "$OUT/bench_$tag.log"
  echo "== [$tag] exit $?"; grep -E "^batch 1:|rror|panick" "$OUT/bench_$tag.log" | tail -2
  [ "$variant" = LLAVA_OPS_STATS=1 ] && sed -n '/llava-ops route, batch 1:/,$p' "$OUT/bench_$tag.log" | head -40
done
timeout 90 /tmp/bin/xtask bench --config "benches/configs/$shape" --batch 4 --max-new-tokens 16 \
  >> "$OUT/results.jsonl" 2> "$OUT/bench_b4.log"
echo "== batch 4: exit $?"; grep -E "^batch 4:|rror|panick" "$OUT/bench_b4.log" | tail -2

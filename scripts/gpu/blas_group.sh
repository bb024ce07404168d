#!/usr/bin/env bash
# Grouped cuBLAS products (a layer's q/k/v and gate/up products behind one host wait each side,
# on by default, `LLAVA_OPS_OFF=blas_group` turns it off) in one call: the LLaVA smoke with it on
# (its logits against the CPU, its tokens against transformers), then the 7B first token without
# and with it, twice each in alternation.
# Usage: scripts/gpu/blas_group.sh   (logs and results.jsonl in $OUT)
set -uo pipefail
source "$(dirname "$0")/env.sh"
export RUST_BACKTRACE=1
start=$SECONDS
timeout 150 /tmp/bin/xtask cuda-smoke > "$OUT/smoke_group.log" 2>&1
echo "== cuda-smoke with blas_group: exit $? after $((SECONDS - start)) s"
grep -E "greedy|rror|panick|smoke" "$OUT/smoke_group.log" | sed 's/ equal to transformers.*//' | head -24
for round in 1 2; do
  for off in blas_group none; do
    LLAVA_OPS_OFF=$off timeout 60 /tmp/bin/xtask bench --config benches/configs/llava-v1.6-mistral-7b-hf \
      --batch 1 --max-new-tokens 16 >> "$OUT/results.jsonl" 2> "$OUT/bench_off_${off}_$round.log"
    echo "== [$round] LLAVA_OPS_OFF=$off: exit $?"; grep -E "^batch 1:|rror|panick" "$OUT/bench_off_${off}_$round.log" | tail -2
  done
done

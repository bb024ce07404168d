#!/usr/bin/env bash
# Historical since the fifth session: the three branches are merged into main (docs/benchmarks.md
# records what this measured); kept as the exact commands of those records.
# The three experiment branches' checks from prebuilt binaries, without checking a branch out:
# .carry/xtask-<branch>.xz (each: `git checkout BRANCH`, the gpu-profile build, strip, xz).
#   speed:    flash-async (cp.async flash kernel: kernel checks, its time, 7B first token) and
#             blas-group (grouped cuBLAS products: LLaVA smoke, 7B first token, A/B twice)
#   fidelity: fidelity (transformers' roundings: cuda-smoke, then the 7B prefill logits against
#             transformers bf16 on shared weights, 16 new tokens)
# Usage: scripts/gpu/branches.sh speed|fidelity   (logs in $OUT)
set -uo pipefail
here=$(dirname "$0")
export RUST_BACKTRACE=1 OUT=${OUT:-/tmp/out}
cfg=benches/configs/llava-v1.6-mistral-7b-hf
bench() {  # LABEL ENV...: the 7B at batch 1, 64 new tokens
  local label=$1; shift
  env "$@" timeout 60 /tmp/bin/xtask bench --config "$cfg" --batch 1 --max-new-tokens 64 \
    >> "$OUT/results.jsonl" 2> "$OUT/bench_$label.log"
  echo "== [$label] 7B: exit $?"; grep -E "^batch 1:|rror|panick" "$OUT/bench_$label.log" | tail -2
}
case ${1:-speed} in
speed)
  XTASK_XZ=.carry/xtask-flash-async.xz source "$here/env.sh"
  LLAVA_FLASH_ASYNC=1 timeout 100 /tmp/bin/xtask cuda-smoke --kernels-only > "$OUT/smoke_async.log" 2>&1
  echo "== [flash-async] cuda-smoke --kernels-only: exit $?"
  grep -E "flash|rror|panick|smoke" "$OUT/smoke_async.log" | head -10
  for on in 0 1; do
    LLAVA_FLASH_ASYNC=$on timeout 60 /tmp/bin/xtask bench-ops --heads 32,8,128 --prefill 3072 \
      --iters 10 --flash "" 2>&1 | grep '^{.*prefill_attention_flash'
  done
  bench async_off LLAVA_FLASH_ASYNC=0
  bench async_on LLAVA_FLASH_ASYNC=1
  XTASK_XZ=.carry/xtask-blas-group.xz source "$here/env.sh"
  LLAVA_OPS_ON=blas_group timeout 120 /tmp/bin/xtask cuda-smoke --llava-only > "$OUT/smoke_group.log" 2>&1
  echo "== [blas-group] cuda-smoke --llava-only: exit $?"
  grep -E "greedy|rror|panick|smoke" "$OUT/smoke_group.log" | sed 's/ equal to transformers.*//' | head -10
  for round in 1 2; do
    bench "group_off_$round" LLAVA_OPS_ON=none
    bench "group_on_$round" LLAVA_OPS_ON=blas_group
  done
  ;;
fidelity)
  XTASK_XZ=.carry/xtask-fidelity.xz source "$here/env.sh"
  timeout 200 /tmp/bin/xtask cuda-smoke > "$OUT/smoke_fidelity.log" 2>&1
  echo "== [fidelity] cuda-smoke: exit $?"
  grep -E "rope|gelu|greedy|rror|panick|smoke" "$OUT/smoke_fidelity.log" | sed 's/ equal to transformers.*//' | head -30
  # fidelity.sh unpacks $XTASK_XZ again through env.sh.
  XTASK_XZ=.carry/xtask-fidelity.xz "$here/fidelity.sh" llava-v1.6-mistral-7b-hf 16 1 2>&1 | grep -vE '^\{' | tail -8
  grep cosine "$OUT/results.jsonl" | tail -1
  ;;
esac

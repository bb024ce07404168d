#!/usr/bin/env bash
# On the GPU machine: one call of the demo model's recipe (docs/demo-model.md). Renders the
# training scenes and the initial model (both reproducible from the seed, so every call makes
# them again), starts from the weights carried in .carry/demo-init/ when there are any (a fresh
# optimizer and schedule), trains for at most $MINUTES minutes, evaluates and exports when
# training ends. What comes back in $OUT (at most 8 files of 16 MiB: the optimizer's state
# does not fit) is the newest checkpoint's weights and state in $OUT/demo-run/, copied every
# few seconds while training runs, so that a call cut off by its time limit still returns
# them; carry them as .carry/demo-init into the next call, or go on here on the CPU.
# If the CUDA run fails at once, the rest of the call trains on the machine's CPU cores.
# Usage: MINUTES=3 scripts/gpu/demo_model.sh [extra `cargo xtask demo-model` flags]
set -uo pipefail
source "$(dirname "$0")/env.sh"
nvidia-smi --query-gpu=name,memory.total --format=csv,noheader
WORK=/tmp/demo-work
mkdir -p "$WORK/run" "$OUT/demo-run"
# Carried weights go over the seed's own init stage (tokenizer and configs), made in a work
# directory of its own so that this one still renders all of its training scenes.
if [ -d .carry/demo-init ]; then
  /tmp/bin/xtask demo-model --work /tmp/demo-init-gen --images 1 --init-only >/dev/null || exit 1
  mkdir -p "$WORK/init" && cp /tmp/demo-init-gen/init/* "$WORK/init/" && cp .carry/demo-init/* "$WORK/init/"
  echo "starting from the weights in .carry/demo-init"
fi
# The newest complete checkpoint (they are renamed into place whole) into $OUT.
copy_latest() {
  local latest
  latest=$(ls -d "$WORK"/run/checkpoint-* 2>/dev/null | grep -v '\.' | sort -t- -k2 -n | tail -1)
  [ -n "$latest" ] || return 0
  for f in model.safetensors llava_state.json; do
    [ -f "$latest/$f" ] && cp "$latest/$f" "$OUT/demo-run/$f.tmp" && mv "$OUT/demo-run/$f.tmp" "$OUT/demo-run/$f"
  done
  cp "$WORK"/run/logging.jsonl "$OUT/demo-run/" 2>/dev/null
}
( while sleep 5; do copy_latest; done ) &
watcher=$!
train() {
  RUST_BACKTRACE=1 /tmp/bin/xtask demo-model --work "$WORK" --device "$1" \
    --stop-after-minutes "$2" --export "$WORK/export" "${@:3}" 2>&1 \
    | grep -v '^Train:' | tee -a "$OUT/demo_model.log"
  return "${PIPESTATUS[0]}"
}
start=$SECONDS
train cuda "${MINUTES:-3}" "$@"
rc=$?
echo "demo-model (cuda): exit $rc after $((SECONDS - start)) s" | tee -a "$OUT/demo_model.log"
if [ "$rc" -ne 0 ] && [ "$((SECONDS - start))" -lt 90 ] && ! ls -d "$WORK"/run/checkpoint-* >/dev/null 2>&1; then
  left=$(python3 -c "print(max(0.5, ${MINUTES:-3} - ($SECONDS - $start) / 60))")
  train cpu "$left" "$@"
  echo "demo-model (cpu): exit $? after $((SECONDS - start)) s" | tee -a "$OUT/demo_model.log"
fi
kill "$watcher" 2>/dev/null
copy_latest
[ -f "$WORK/eval.md" ] && cp "$WORK/eval.md" "$OUT/"
ls -l "$OUT" "$OUT/demo-run"

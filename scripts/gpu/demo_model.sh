#!/usr/bin/env bash
# On the GPU machine: one call of the demo model's recipe (docs/demo-model.md). Renders the
# training scenes and the initial model (both reproducible from the seed, so every call makes
# them again), resumes from the checkpoint carried in .carry/demo-run/ when there is one, trains
# for at most $MINUTES minutes, and brings the newest checkpoint back in $OUT/demo-run/ (carry
# it as .carry/demo-run into the next call). When training ends the same call evaluates the
# model on held-out scenes and exports it to $OUT/demo-model/.
# Usage: MINUTES=7 scripts/gpu/demo_model.sh [extra `cargo xtask demo-model` flags]
set -uo pipefail
source "$(dirname "$0")/env.sh"
nvidia-smi --query-gpu=name,memory.total --format=csv,noheader
WORK=/tmp/demo-work
mkdir -p "$WORK/run"
# Weights to start from instead of random ones (a checkpoint's model files; fresh optimizer
# and schedule), where the carry limit leaves no room for a whole checkpoint.
if [ -d .carry/demo-init ]; then
  mkdir -p "$WORK/init" && cp .carry/demo-init/* "$WORK/init/"
  echo "starting from the weights in .carry/demo-init"
fi
if [ -d .carry/demo-run ]; then
  cp -r .carry/demo-run/. "$WORK/run/"
  echo "resuming from: $(ls "$WORK/run")"
fi
start=$SECONDS
RUST_BACKTRACE=1 /tmp/bin/xtask demo-model --work "$WORK" --device cuda \
  --stop-after-minutes "${MINUTES:-7}" --export "$OUT/demo-model" "$@" 2>&1 \
  | grep -v '^Train:' | tee "$OUT/demo_model.log"
echo "demo-model: exit ${PIPESTATUS[0]} after $((SECONDS - start)) s"
# The newest checkpoint only (with the run's logs and curves): the next call's carry.
latest=$(ls -d "$WORK"/run/checkpoint-* 2>/dev/null | sort -t- -k2 -n | tail -1)
mkdir -p "$OUT/demo-run"
[ -n "$latest" ] && cp -r "$latest" "$OUT/demo-run/"
cp "$WORK"/run/*.jsonl "$OUT/demo-run/" 2>/dev/null
cp -r "$WORK"/run/images "$OUT/demo-run/" 2>/dev/null
[ -f "$WORK/eval.md" ] && cp "$WORK/eval.md" "$OUT/"
du -sh "$OUT"/* | tail -5

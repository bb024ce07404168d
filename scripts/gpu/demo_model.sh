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
# PROBE="32 128" first trains each batch size for PROBE_S seconds (default 40) on scenes of
# their own and writes its steady rate (steps/s after step 25, from logging.jsonl) and the
# trainer's phase split to $OUT/probe.log; that time comes off MINUTES. With TRAIN_S, IMAGES
# and BATCH set, the epochs of the main run are those the probe's rate for BATCH fits into
# TRAIN_S seconds (the value is printed, to repeat in the calls that resume it).
set -uo pipefail
source "$(dirname "$0")/env.sh"
nvidia-smi --query-gpu=name,memory.total --format=csv,noheader
WORK=/tmp/demo-work
mkdir -p "$WORK/run" "$OUT/demo-run"
# Carried weights go over the seed's own init stage (tokenizer and configs), made in a work
# directory of its own so that this one still renders all of its training scenes.
# (Skipped when the carried directory holds every file: training the seed's tokenizer takes a while.)
if [ -d .carry/demo-init ]; then
  mkdir -p "$WORK/init"
  for f in config.json preprocessor_config.json tokenizer.json tokenizer_config.json model.safetensors; do
    [ -f ".carry/demo-init/$f" ] && continue
    /tmp/bin/xtask demo-model --work /tmp/demo-init-gen --images 1 --init-only >/dev/null || exit 1
    cp /tmp/demo-init-gen/init/* "$WORK/init/"
    break
  done
  cp .carry/demo-init/* "$WORK/init/"
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
  RUST_LOG=llava_train=info RUST_BACKTRACE=1 /tmp/bin/xtask demo-model --work "$WORK" --device "$1" \
    --stop-after-minutes "$2" --export "$WORK/export" "${@:3}" 2>&1 \
    | grep --line-buffered -v '^Train:' | sed -u 's/\x1b\[[0-9;]*m//g' | tee -a "$OUT/demo_model.log"
  return "${PIPESTATUS[0]}"
}
rate() { python3 "$(dirname "$0")/steady_rate.py" "$1"; }
start=$SECONDS
for bs in ${PROBE:-}; do
  RUST_LOG=llava_train=info /tmp/bin/xtask demo-model --work "/tmp/probe-$bs" --device cuda --images 20000 \
    --epochs 1 --batch-size "$bs" --stop-after-minutes "$(python3 -c "print(${PROBE_S:-40} / 60)")" \
    --export "/tmp/probe-$bs/export" 2>&1 | grep --line-buffered -v '^Train:' | sed -u 's/\x1b\[[0-9;]*m//g' \
    | grep 'phase' >> "$OUT/probe.log"
  r=$(rate "/tmp/probe-$bs/run/logging.jsonl")
  echo "batch $bs: $r steps/s, $(python3 -c "print(round($r * $bs))") rows/s" | tee -a "$OUT/probe.log"
  [ "$bs" = "${BATCH:-}" ] && main_rate=$r
done
minutes=$(python3 -c "print(${MINUTES:-3} - ($SECONDS - $start) / 60)")
extra=()
if [ -n "${BATCH:-}" ]; then extra+=(--batch-size "$BATCH"); fi
if [ -n "${IMAGES:-}" ]; then extra+=(--images "$IMAGES"); fi
if [ -n "${TRAIN_S:-}" ] && [ -n "${main_rate:-}" ]; then
  epochs=$(python3 -c "print(max(1, int($main_rate * $BATCH * $TRAIN_S / $IMAGES)))")
  echo "epochs: $epochs (from $main_rate steps/s at batch $BATCH over $TRAIN_S s)" | tee -a "$OUT/probe.log"
  extra+=(--epochs "$epochs")
fi
train cuda "$minutes" "${extra[@]}" "$@"
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
[ -d "$WORK/export" ] && tar cf "$OUT/export.tar" -C "$WORK" export
ls -l "$OUT" "$OUT/demo-run"

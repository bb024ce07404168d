#!/usr/bin/env bash
# On the GPU machine: the speed of a demo-model training step and where it goes. Trains the
# recipe at batch $BATCH (default 128) for $RATE_S seconds (default 40) on scenes of its own
# and writes the steady rate (steps/s after step 25, scripts/gpu/steady_rate.py) and the
# trainer's phase split to $OUT/train_profile.txt; then, with autotuning done, one run of
# $PROFILE_S seconds (default 45) with cubecl's kernel profiler on (it waits for each kernel,
# so steps are slower there), its kernels' summed times appended
# (scripts/gpu/profile_summary.py); PROFILE_S=0 skips it. Extra environment for both runs (an A/B's switch) goes
# before the command as usual.
# Usage: BATCH=128 scripts/gpu/train_profile.sh [extra `cargo xtask demo-model` flags]
set -uo pipefail
source "$(dirname "$0")/env.sh"
here=$(dirname "$0")
log="$OUT/train_profile.txt"
nvidia-smi --query-gpu=name --format=csv,noheader | tee "$log"
run() { # work dir, seconds, extra env...
  local work=$1 secs=$2
  shift 2
  env "$@" RUST_LOG=llava_train=info /tmp/bin/xtask demo-model --work "$work" --device cuda \
    --images 20000 --epochs 1 --batch-size "${BATCH:-128}" \
    --stop-after-minutes "$(python3 -c "print($secs / 60)")" --export "$work/export" "${EXTRA[@]}" 2>&1 \
    | grep --line-buffered -v '^Train:' | sed -u 's/\x1b\[[0-9;]*m//g' | grep 'phase' | tail -2 >> "$log"
}
EXTRA=("$@")
rm -rf /tmp/rate
run /tmp/rate "${RATE_S:-40}"
echo "$(python3 "$here/steady_rate.py" /tmp/rate/run/logging.jsonl) steps/s at batch ${BATCH:-128}" | tee -a "$log"
if [ "${PROFILE_S:-45}" != 0 ]; then
  rm -rf /tmp/train-profile /tmp/train-profile.log
  echo "profiled:" >> "$log"
  run /tmp/train-profile "${PROFILE_S:-45}" CUBECL_DEBUG_OPTION=profile CUBECL_DEBUG_LOG=/tmp/train-profile.log
  python3 "$here/profile_summary.py" /tmp/train-profile.log 45 >> "$log"
fi
cat "$log"

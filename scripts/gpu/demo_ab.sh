#!/usr/bin/env bash
# On the GPU machine: an A/B of the demo model's recipe, its variants trained at the same time
# on the one card (a step of this tiny model leaves most of the card idle), each for at most
# $MINUTES minutes from its own start, then evaluated on the held-out scenes. A run the time
# limit cut before its schedule's end is evaluated at its newest checkpoint (its state's total
# steps set to the steps it made, so the recipe takes it as finished). Each variant's log,
# steady rate (steps/s after step 25), training curve, accuracy table and newest weights land
# in $OUT/ab-<name>.safetensors and, packed in $OUT/ab-text-files.tgz, ab-<name>.{log,md,jsonl,
# config.json} and ab.txt.
# Usage: MINUTES=7 scripts/gpu/demo_ab.sh "name: flags" "name: flags" ...
#   e.g. scripts/gpu/demo_ab.sh "sincos: --position-init sincos" "random: --position-init random"
# Flags common to every variant go in $COMMON. Weights carried in .carry/demo-init/ (with the
# tokenizer and configs) start every variant but one whose flags include --no-init (that one
# starts from the recipe's own random weights).
set -uo pipefail
source "$(dirname "$0")/env.sh"
here=$(dirname "$0")
nvidia-smi --query-gpu=name,memory.total --format=csv,noheader | tee "$OUT/ab.txt"
variant() { # name, flags...
  local name=$1 work=/tmp/ab-$1
  shift
  rm -rf "$work"
  local flags=() scratch=
  for f in "$@"; do
    if [ "$f" = --no-init ]; then scratch=1; else flags+=("$f"); fi
  done
  set -- "${flags[@]}"
  # Carried weights (every file of an init stage) start every variant, as in demo_model.sh.
  if [ -z "$scratch" ] && [ -f .carry/demo-init/tokenizer.json ]; then
    mkdir -p "$work/init" && cp .carry/demo-init/* "$work/init/"
  fi
  # shellcheck disable=SC2086
  RUST_LOG=llava_train=info /tmp/bin/xtask demo-model --work "$work" --device cuda \
    --stop-after-minutes "${MINUTES:-7}" --export "$work/export" ${COMMON:-} "$@" 2>&1 \
    | grep --line-buffered -v '^Train:' | sed -u 's/\x1b\[[0-9;]*m//g' > "$OUT/ab-$name.log"
  if [ ! -f "$work/eval.md" ]; then
    latest=$(ls -d "$work"/run/checkpoint-* 2>/dev/null | grep -v '\.' | sort -t- -k2 -n | tail -1)
    [ -n "$latest" ] || return
    python3 - "$latest/llava_state.json" <<'PY'
import json, sys
p = sys.argv[1]
s = json.load(open(p))
s["total_steps"] = s["global_step"]
json.dump(s, open(p, "w"))
PY
    # shellcheck disable=SC2086
    /tmp/bin/xtask demo-model --work "$work" --device cuda --export "$work/export" ${COMMON:-} "$@" \
      2>&1 | sed 's/\x1b\[[0-9;]*m//g' | tail -5 >> "$OUT/ab-$name.log"
  fi
  cp "$work/eval.md" "$OUT/ab-$name.md" 2>/dev/null
  latest=$(ls -d "$work"/run/checkpoint-* 2>/dev/null | grep -v '\.' | sort -t- -k2 -n | tail -1)
  [ -n "$latest" ] && cp "$latest/model.safetensors" "$OUT/ab-$name.safetensors"
  cp "$work/run/logging.jsonl" "$OUT/ab-$name.jsonl" 2>/dev/null
  cp "$work/init/config.json" "$OUT/ab-$name.config.json" 2>/dev/null
  echo "$name: $(python3 "$here/steady_rate.py" "$work/run/logging.jsonl") steps/s" >> "$OUT/ab.txt"
}
for spec in "$@"; do
  name=${spec%%:*}
  # shellcheck disable=SC2086
  variant "$name" ${spec#*:} &
done
wait
cat "$OUT/ab.txt"
for f in "$OUT"/ab-*.md; do echo "== $f"; head -12 "$f"; done
# At most 8 files come back from a call: the weights alone, the rest in one archive.
(cd "$OUT" && tar czf ab-text-files.tgz --exclude='*.safetensors' --exclude='*.tgz' ab-* ab.txt \
  && find . -maxdepth 1 -name 'ab*' ! -name '*.safetensors' ! -name '*.tgz' -delete)

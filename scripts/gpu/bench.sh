#!/usr/bin/env bash
# GPU benchmark: `xtask bench` and benches/transformers_llava.py on the same GPUs, one after the
# other, each with its GPU memory sampled by nvidia-smi every 200 ms (peak per GPU, the CUDA
# context included, the same way for both).
# Usage: scripts/gpu/bench.sh JOB...   where JOB is ENGINE+SHAPE+DEVICE_MAP+BATCH+NEW_TOKENS
#   ENGINE ours|hf; SHAPE a folder of benches/configs; DEVICE_MAP cuda:0 or auto (all GPUs)
#   e.g. scripts/gpu/bench.sh ours+llava-next-72b-hf+auto+1+128 hf+llava-next-72b-hf+auto+1+128
# Per-job logs in /tmp/bench; $OUT (default /tmp/out) gets results.jsonl and bench.log.
set -uo pipefail
source "$(dirname "$0")/env.sh"
LOG=/tmp/bench
mkdir -p "$LOG"
export PYTHONUNBUFFERED=1 RUST_BACKTRACE=1
GPUS=$(nvidia-smi --query-gpu=index --format=csv,noheader | wc -l)
ALL=$(seq -s, -f 'cuda:%g' 0 $((GPUS - 1)))
TIMEOUT=${TIMEOUT:-280}

for job in "$@"; do
  IFS=+ read -r engine shape map batch tokens <<< "$job"
  [ "$map" = cuda ] && map=cuda:0
  label="${engine}_$(basename "$shape")_${map//[:,]/-}_b${batch}"
  nvidia-smi --query-gpu=index,memory.used --format=csv,noheader,nounits -lms 200 > "$LOG/$label.mem" &
  mon=$!
  start=$SECONDS
  if [ "$engine" = ours ]; then
    if [ "$map" = auto ]; then dev=(--device "$ALL" --device-map auto); else dev=(--device "$map"); fi
    timeout "$TIMEOUT" /tmp/bin/xtask bench --config "benches/configs/$shape" "${dev[@]}" \
      --batch "$batch" --max-new-tokens "$tokens" > "$LOG/$label.jsonl" 2> "$LOG/$label.err"
  else
    timeout "$TIMEOUT" python3 benches/transformers_llava.py --config "benches/configs/$shape" \
      --device-map "$map" --batch "$batch" --max-new-tokens "$tokens" \
      > "$LOG/$label.jsonl" 2> "$LOG/$label.err"
  fi
  rc=$?
  kill $mon 2>/dev/null; wait $mon 2>/dev/null
  peaks=$(python3 - "$LOG/$label.mem" <<'PY'
import sys, collections
peak = collections.defaultdict(int)
for line in open(sys.argv[1]):
    try:
        i, used = [int(x) for x in line.split(",")]
    except ValueError:
        continue
    peak[i] = max(peak[i], used)
print([round(peak[i] / 1024, 1) for i in sorted(peak)])
PY
)
  { echo "== $label"; cat "$LOG/$label.err"; } >> "$OUT/bench.log"
  echo "== $label: exit $rc, $((SECONDS - start)) s, nvidia-smi peak GiB per GPU $peaks"
  grep -v '^\s*$' "$LOG/$label.err" | grep -iv "warn" | tail -4
  while read -r line; do
    python3 -c "import json,sys; r=json.loads(sys.argv[1]); r['label']='$label'; r['smi_peak_gib']=$peaks; print(json.dumps(r))" "$line" >> "$OUT/results.jsonl"
    echo "$line"
  done < "$LOG/$label.jsonl"
done

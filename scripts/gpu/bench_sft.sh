#!/usr/bin/env bash
# Fine-tuning speed and memory, both engines in one call on the same GPU: `xtask bench-sft`
# (ours) and benches/transformers_sft.py (transformers + PEFT) on the same full-size shape with
# random weights, the same sample (one 640×480 image, 15 question and 15 caption tokens) and
# the same variants. Each engine's GPU memory is also sampled by nvidia-smi every 200 ms (peak,
# CUDA context included, the same way for both).
# Usage: scripts/gpu/bench_sft.sh [SHAPE] [VARIANT...]
#   SHAPE a folder of benches/configs (default llava-v1.6-mistral-7b-hf);
#   VARIANT lora-qkv|lora-all|full + :gc|:nogc + :bN (default: the issue's table).
# $OUT gets bench_sft.jsonl (one line a variant and engine) and bench_sft.log.
set -uo pipefail
source "$(dirname "$0")/env.sh"
shape=${1:-llava-v1.6-mistral-7b-hf}
shift || true
variants=("$@")
[ ${#variants[@]} -gt 0 ] || variants=(lora-qkv:gc:b1 lora-qkv:nogc:b1 lora-all:gc:b1 lora-all:gc:b4 full:gc:b1)
TIMEOUT=${TIMEOUT:-150}
export PYTHONUNBUFFERED=1 RUST_BACKTRACE=1
log="$OUT/bench_sft.log"
nvidia-smi --query-gpu=name --format=csv,noheader | tee "$log"
peak() { sort -t, -k2 -n "$1" | tail -1 | cut -d, -f2 | tr -d ' '; }
for engine in ours hf; do
  nvidia-smi --query-gpu=index,memory.used --format=csv,noheader,nounits -i 0 -lms 200 > "/tmp/sft_$engine.mem" &
  mon=$!
  if [ "$engine" = ours ]; then
    # One process a variant: the allocator keeps the pages an earlier variant took.
    for v in "${variants[@]}"; do
      timeout "$TIMEOUT" /tmp/bin/xtask bench-sft --config "benches/configs/$shape" --device cuda \
        --variant "$v" 2>> "$log" | tee -a "$OUT/bench_sft.jsonl"
    done
  else
    timeout "$TIMEOUT" python3 benches/transformers_sft.py "benches/configs/$shape" "${variants[@]}" \
      2>> "$log" | tee -a "$OUT/bench_sft.jsonl"
  fi
  echo "rc $? $engine: nvidia-smi peak $(peak "/tmp/sft_$engine.mem") MiB" | tee -a "$log"
  kill "$mon" 2>/dev/null
done

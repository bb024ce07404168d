#!/usr/bin/env bash
# Both engines on the same weights, in one run: transformers writes a seeded random checkpoint
# (safetensors) to local disk; ours loads it (load time from disk), writes its prefill logits
# and is timed; transformers loads the same checkpoint, compares the prefill logits with ours
# (cosine per position, relative error) and is timed.
# Usage: [F32_REFERENCE=1] [NOISE_FLOOR=1] scripts/gpu/fidelity.sh SHAPE [NEW_TOKENS] [OUR_BATCHES]
#   F32_REFERENCE=1 also compares both engines with transformers in f32 (the bf16 noise floor).
#   NOISE_FLOOR=1 also runs transformers' bf16 with its other attention kernels and cuBLAS
#   reduction mode, each against its default run and against ours.
#   e.g. scripts/gpu/fidelity.sh llava-v1.6-mistral-7b-hf 256 1,4,16
# $OUT (default /tmp/out) gets results.jsonl and the three logs.
set -uo pipefail
source "$(dirname "$0")/env.sh"
shape=$1
tokens=${2:-256}
batches=${3:-1}
weights=/tmp/weights/$shape
export PYTHONUNBUFFERED=1 RUST_BACKTRACE=1
if [ ! -f "$weights/config.json" ]; then
  python3 benches/transformers_llava.py --config "benches/configs/$shape" \
    --save-weights "$weights" 2> "$OUT/save.log" || { tail -5 "$OUT/save.log"; exit 1; }
fi
/tmp/bin/xtask bench --config "$weights" --weights "$weights" --dump-logits /tmp/ours_logits.f32 \
  --batch "$batches" --max-new-tokens "$tokens" >> "$OUT/results.jsonl" 2> "$OUT/ours.log"
echo "ours: exit $?"; tail -4 "$OUT/ours.log"
python3 benches/transformers_llava.py --config "$weights" --weights "$weights" \
  --compare-logits /tmp/ours_logits.f32 --max-new-tokens "$tokens" ${F32_REFERENCE:+--f32-reference} ${NOISE_FLOOR:+--noise-floor} \
  >> "$OUT/results.jsonl" 2> "$OUT/hf.log"
echo "transformers: exit $?"; tail -4 "$OUT/hf.log"
cat "$OUT/results.jsonl"

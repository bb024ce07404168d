#!/usr/bin/env bash
# The figures of docs/benchmarks.md in one call, both engines in the same run: the 7B shape on
# shared weights (fidelity.sh: prefill logits compared, ours at batch 1, 4, 16), then on two
# GPUs the 72B and 34B shapes split over both against transformers' device_map="auto", the 8B
# shape on one GPU.
# Usage: scripts/gpu/same_run.sh   (logs and results.jsonl in $OUT)
set -uo pipefail
here=$(dirname "$0")
source "$here/env.sh"
export OUT
echo "== 7B, shared weights"
"$here/fidelity.sh" llava-v1.6-mistral-7b-hf 256 1,4,16 2>&1 | grep -vE '^\{' | tail -12
if [ "$(nvidia-smi --query-gpu=index --format=csv,noheader | wc -l)" -ge 2 ]; then
  TIMEOUT=150 "$here/bench.sh" ours+llava-next-72b-hf+auto+1+128 hf+llava-next-72b-hf+auto+1+128 \
    ours+llava-v1.6-34b-hf+auto+1+128 hf+llava-v1.6-34b-hf+auto+1+128 2>&1 | grep -E "^==|^batch 1:|rror|panick"
fi
TIMEOUT=120 "$here/bench.sh" ours+llama3-llava-next-8b-hf+cuda:0+1+256 hf+llama3-llava-next-8b-hf+cuda:0+1+256 \
  2>&1 | grep -E "^==|^batch 1:|rror|panick"

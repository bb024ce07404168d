#!/usr/bin/env bash
# Our attention kernels against PyTorch's SDPA on the same GPU, in one call (issue 5: decode
# attention ≥ 0.7× SDPA; the prompt attention's share of the first token): `xtask bench-ops`
# (decode at 3072 cached positions, then the causal prompt of the 7B image prompt) and
# benches/sdpa_attention.py on the same shapes, for Mistral's heads and the 72B's.
# Usage: scripts/gpu/attention_vs_sdpa.sh   (JSON lines in $OUT/attention.jsonl)
set -uo pipefail
source "$(dirname "$0")/env.sh"
for heads in 32,8,128 64,8,128; do
  timeout 120 /tmp/bin/xtask bench-ops --heads "$heads" --context 3072 --iters 50 2>&1 \
    | grep -E '^\{.*attention' | tee -a "$OUT/attention.jsonl"
  timeout 120 /tmp/bin/xtask bench-ops --heads "$heads" --prefill 2958 --iters 10 --flash "" 2>&1 \
    | grep -E '^\{.*prefill_attention_flash' | tee -a "$OUT/attention.jsonl"
  timeout 120 python3 benches/sdpa_attention.py --heads "$heads" --context 3072 --prefill 2958 \
    | tee -a "$OUT/attention.jsonl"
done

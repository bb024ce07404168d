#!/usr/bin/env bash
# On the GPU machine: one step of full fine-tuning of the demo model (tower trained, a batch
# of rendered scenes of three aspect ratios) on CUDA against the same step on the CPU, from
# the weights in .carry/demo-init/. AdamW's epsilon (1000) is far above every gradient and
# the learning rate equal to it, so a tensor's change is its negative gradient, and
# compare_step.py prints each tensor's relative difference between the devices (TF32
# products: most tensors within 3e-3, the worst 1.3e-2 on an H100). Result in $OUT/train_parity.txt; exits 1 on a mismatch.
# Usage: [ROWS=16] scripts/gpu/train_parity.sh
source "$(dirname "$0")/env.sh" # (not written for set -e)
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
work=/tmp/train-parity
rm -rf "$work" && mkdir -p "$work/init" && cp .carry/demo-init/* "$work/init/"
/tmp/bin/xtask demo-model --work "$work" --images "${ROWS:-16}" --seed 9 --init-only
cd "$work"
for device in cpu cuda; do
  /tmp/bin/xtask sft --model-type llava1_6-mistral-7b-instruct-hf --model-id-or-path init \
    --dataset data/train.jsonl --dataset-test-ratio 0 --sft-type full --freeze-vit false \
    --device "$device" --dtype fp32 --batch-size "${ROWS:-16}" --max-steps 1 --logging-steps 1 \
    --learning-rate 1000 --adam-epsilon 1000 --weight-decay 0 --max-grad-norm 1e9 \
    --warmup-ratio 0 --save-steps 1 --max-length 1024 --output-dir "run-$device" \
    --add-output-dir-suffix false --seed 9 2>&1 | grep -v '^Train' | tail -2
  grep '"loss"' "run-$device/logging.jsonl" | sed "s/^/$device: /"
done 2>&1 | tee "$OUT/train_parity.txt"
python3 "$here/compare_step.py" init/model.safetensors run-cpu/checkpoint-1/model.safetensors \
  run-cuda/checkpoint-1/model.safetensors | tee -a "$OUT/train_parity.txt"

#!/usr/bin/env bash
# On the GPU machine: unpack the carried CUDA build of xtask and run the CUDA smoke test on the
# decoder and LLaVA fixtures (see docs/cuda.md). Usage: scripts/gpu/cuda_smoke.sh  (writes logs to $OUT)
set -uo pipefail
source "$(dirname "$0")/env.sh"
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader
ls "$CUDA_PATH"/lib64/libnvrtc* 2>/dev/null | head -3
ls "$CUDA_PATH"/include/cuda_bf16.h >/dev/null || echo "no CUDA headers under $CUDA_PATH/include"
export RUST_BACKTRACE=1
start=$SECONDS
timeout 500 /tmp/bin/xtask cuda-smoke 2>&1 | tee "$OUT/cuda_smoke.log"
echo "cuda-smoke: exit ${PIPESTATUS[0]} after $((SECONDS - start)) s"
start=$SECONDS
timeout 60 /tmp/bin/xtask generate --device cuda --dtype bf16 --model-dir fixtures/decoders/qwen2 --json 2>&1 | tee "$OUT/generate_bf16.log"
echo "generate bf16: exit ${PIPESTATUS[0]} after $((SECONDS - start)) s"

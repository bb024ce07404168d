#!/usr/bin/env bash
# On the GPU machine: run llava-ops' CUDA kernel tests (crates/llava-ops/tests/cuda_kernels.rs),
# built here with `cargo test --profile gpu -p llava-ops --features llava-ops/cuda --no-run` and
# carried as .carry/llava_ops_tests.xz (docs/cuda.md). Usage: scripts/gpu/ops_tests.sh
set -uo pipefail
source "$(dirname "$0")/env.sh"
xz -dc .carry/llava_ops_tests.xz > /tmp/bin/llava_ops_tests && chmod +x /tmp/bin/llava_ops_tests || exit 1
start=$SECONDS
# One test at a time: each compiles its kernels on first launch, and their prints stay in order.
timeout 400 /tmp/bin/llava_ops_tests --test-threads 1 2>&1 | tee "$OUT/ops_tests.log"
echo "llava-ops CUDA tests: exit ${PIPESTATUS[0]} after $((SECONDS - start)) s"

#!/usr/bin/env bash
# Here (the development machine, no GPU): the CUDA builds the GPU machine runs, offline
# (docs/cuda.md), stripped and xz-compressed into .carry/ (ignored by git; name it in the
# device call's `carry`): .carry/xtask.xz (cuda-smoke, bench, bench-ops, sweep, infer) and
# .carry/llava_ops_tests.xz (crates/llava-ops/tests/cuda_kernels.rs, for scripts/gpu/ops_tests.sh).
# Usage: scripts/gpu/build_carry.sh   (about 20 minutes from a cold target/)
set -euo pipefail
cd "$(dirname "$0")/../.."
cp Cargo.lock "${TMPDIR:-/tmp}/Cargo.lock.carry"
trap 'cp "${TMPDIR:-/tmp}/Cargo.lock.carry" Cargo.lock' EXIT
offline=(--config cuda-offline/config.toml)
cargo "${offline[@]}" build --profile gpu -p xtask --features xtask/cuda
# With xtask in the same build, the test binary shares its dependencies (the same features).
tests=$(cargo "${offline[@]}" test --profile gpu -p llava-ops -p xtask --features xtask/cuda --no-run \
  --message-format=json | jq -r 'select(.profile.test and .target.name == "cuda_kernels") | .executable')
[ -n "$tests" ] || { echo "no cuda_kernels test binary was built" >&2; exit 1; }
mkdir -p .carry
xz -T2 -6 -c target/gpu/xtask > .carry/xtask.xz
strip -o "${TMPDIR:-/tmp}/llava_ops_tests" "$tests"
xz -T2 -6 -c "${TMPDIR:-/tmp}/llava_ops_tests" > .carry/llava_ops_tests.xz
ls -l .carry/

#!/usr/bin/env bash
# On the GPU machine: the decode step replayed as a CUDA graph, checked and timed.
# 1. cuda-smoke: the fixtures' greedy tokens on CUDA (the graph path) against transformers.
# 2. llava-v1.6-mistral-7b shape, random bf16 weights, batch 1: graph replay on, then off
#    (LLAVA_GRAPH=0), in the same run. Usage: scripts/gpu/graph_replay.sh [NEW_TOKENS] [BATCHES]
set -uo pipefail
source "$(dirname "$0")/env.sh"
tokens=${1:-128}
batches=${2:-1}
export RUST_BACKTRACE=1
start=$SECONDS
timeout 200 /tmp/bin/xtask cuda-smoke > "$OUT/cuda_smoke.log" 2>&1
echo "cuda-smoke: exit $? after $((SECONDS - start)) s"
grep -E "greedy|error|Error|panick" "$OUT/cuda_smoke.log" | head -20
for graph in 1 0; do
  start=$SECONDS
  LLAVA_GRAPH=$graph timeout 170 /tmp/bin/xtask bench --config benches/configs/llava-v1.6-mistral-7b-hf \
    --batch "$batches" --max-new-tokens "$tokens" >> "$OUT/results.jsonl" 2> "$OUT/bench_graph$graph.log"
  echo "bench LLAVA_GRAPH=$graph: exit $? after $((SECONDS - start)) s"
  grep -E "^batch|rror|panick" "$OUT/bench_graph$graph.log" | tail -5
done
cat "$OUT/results.jsonl"

#!/usr/bin/env bash
# Cold start, in two fresh processes: the first with an empty kernel cache, the second with the
# cache the first filled (cubecl's `compilation.cache`, switched on by a cubecl.toml written here
# for the run; docs/cuda.md). Each reports its first run's first token as `cold_ttft_ms`.
# Usage: scripts/gpu/cold_start.sh [SHAPE]   (default llava-v1.6-mistral-7b-hf)
set -uo pipefail
source "$(dirname "$0")/env.sh"
shape=${1:-llava-v1.6-mistral-7b-hf}
cache=target/environment
rm -rf "$cache"
printf '[compilation]\ncache = true\n' > cubecl.toml
for run in empty_cache warm_cache; do
  /tmp/bin/xtask bench --config "benches/configs/$shape" --batch 1 --max-new-tokens 16 \
    > "$OUT/cold_$run.jsonl" 2> "$OUT/cold_$run.log"
  echo "$run: exit $?"
  grep -E "warm-up 0|^batch 1:" "$OUT/cold_$run.log"
done
du -sh "$cache" 2>/dev/null
rm -f cubecl.toml

#!/usr/bin/env bash
# First-token A/B in one call: each VARIANT (environment assignments joined by commas, "" for
# the defaults) runs the 7B shape's prompt six times in its own process (`xtask bench --batch
# 1,1,1,1,1,1`, random weights), variants alternating over $ROUNDS rounds; one JSON line per
# variant and round with the six times and their median. With STATS=1 each variant then runs
# once more under `LLAVA_OPS_STATS=sync` (each routed op's own time; log in $OUT).
# Usage: [ROUNDS=2] [CONFIG=benches/configs/NAME] [STATS=1] scripts/gpu/ttft_ab.sh VARIANT...
#   e.g. scripts/gpu/ttft_ab.sh "" LLAVA_CUBLAS_MIN_MFLOP=0 LLAVA_CUBLAS_MIN_MFLOP=5000
set -uo pipefail
source "$(dirname "$0")/env.sh"
export RUST_BACKTRACE=1
config=${CONFIG:-benches/configs/llava-v1.6-mistral-7b-hf}
[ $# -eq 0 ] && set -- ""
for round in $(seq "${ROUNDS:-2}"); do
  for variant in "$@"; do
    read -r -a vars <<< "${variant//,/ }"
    env "${vars[@]}" timeout 90 /tmp/bin/xtask bench --config "$config" \
      --batch 1,1,1,1,1,1 --max-new-tokens 32 > "$OUT/ttft.jsonl.tmp" 2> "$OUT/ttft_$round.err"
    rc=$?
    [ $rc -eq 0 ] || { echo "[$variant] exit $rc"; grep -E "rror|panick" "$OUT/ttft_$round.err" | head -3; }
    python3 - "$variant" "$round" "$OUT/ttft.jsonl.tmp" <<'PY' | tee -a "$OUT/ttft.jsonl"
import json, sys
rows = [json.loads(l) for l in open(sys.argv[3]) if l.startswith("{")]
t = sorted(round(r["ttft_ms"], 1) for r in rows if "ttft_ms" in r)
d = sorted(round(r.get("decode_tok_s", 0), 1) for r in rows if "ttft_ms" in r)
print(json.dumps({"variant": sys.argv[1] or "default", "round": sys.argv[2], "ttft_ms": t,
                  "median": t[len(t) // 2] if t else None, "decode_tok_s": d}))
PY
  done
done
[ -n "${STATS:-}" ] || exit 0
for variant in "$@"; do
  read -r -a vars <<< "${variant//,/ }"
  tag=${variant//[=,]/_}
  env "${vars[@]}" LLAVA_OPS_STATS=sync timeout 90 /tmp/bin/xtask bench --config "$config" \
    --batch 1 --max-new-tokens 2 > /dev/null 2> "$OUT/stats_${tag:-default}.log"
  echo "== [$variant] LLAVA_OPS_STATS=sync: exit $? (stats_${tag:-default}.log)"
done

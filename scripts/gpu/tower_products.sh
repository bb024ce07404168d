#!/usr/bin/env bash
# The vision tower's products (2885 rows: 5 tiles of 577; f32 sums, as the model takes them):
# every cubek strategy and cuBLAS timed by `xtask sweep --ops tower`, a table of them, then the
# 7B first token with the fastest cubek strategy (`LLAVA_MATMUL_LARGE`, weighted by how often
# the tower runs each product: 92 of 1024→1024, 23 each of fc1 and fc2) against the default.
# Usage: [ROUNDS=2] scripts/gpu/tower_products.sh   (records in $OUT/sweep_tower.jsonl)
set -uo pipefail
here=$(dirname "$0")
source "$here/env.sh"
timeout 300 /tmp/bin/xtask sweep --config benches/configs/llava-v1.6-mistral-7b-hf --ops tower \
  --iters 30 > "$OUT/sweep_tower.jsonl" 2> "$OUT/sweep_tower.err"
echo "== sweep --ops tower: exit $?"
best=$(python3 - "$OUT/sweep_tower.jsonl" <<'PY'
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1]) if l.startswith("{")]
calls = {"tower_qkvo": 92, "tower_fc1": 23, "tower_fc2": 23}
total = {}
for r in rows:
    ok = "us" in r and r.get("rel_err_vs_burn", 1) < 1e-2
    print(f'{r["op"]:11} {r["candidate"]:24} ' + (f'{r["us"]:8.1f} us {r["tflop_s"]:6.1f} TFLOP/s rel {r["rel_err_vs_burn"]:.1e}' if "us" in r else r.get("error", "")[:80]), file=sys.stderr)
    c = r["candidate"]
    total.setdefault(c, 0.0)
    total[c] += calls[r["op"]] * r["us"] if ok else float("inf")
for c, t in sorted(total.items(), key=lambda kv: kv[1]):
    print(f"tower total {c:24} {t / 1e3:8.2f} ms", file=sys.stderr)
print(min((t, c) for c, t in total.items() if c != "cublas")[1])
PY
)
echo "== fastest cubek strategy over the tower: $best"
"$here/ttft_ab.sh" "" "LLAVA_MATMUL_LARGE=$best"

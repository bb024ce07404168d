#!/usr/bin/env python3
"""Compares one optimizer step taken on two devices from the same weights:
`compare_step.py before.safetensors a.safetensors b.safetensors [tolerance]`. The step is
taken with AdamW's epsilon far above every gradient (train_parity.sh), so each tensor's
change is its negative gradient; prints, per tensor, ‖Δb − Δa‖ / ‖Δa‖ (worst first) and
exits 1 when a tensor whose gradient is not zero (‖Δa‖ over 1e-6: a key projection's bias
has none, softmax being blind to a shift, so both devices' rounding is all it shows) differs by
more than the tolerance (default 0.02; TF32 products give ~1e-2 at worst)."""
import sys

import numpy as np
from safetensors.numpy import load_file

before, a, b = (load_file(p) for p in sys.argv[1:4])
tolerance = float(sys.argv[4]) if len(sys.argv) > 4 else 0.02
rows = []
for key, w in before.items():
    da = a[key].astype(np.float64) - w
    db = b[key].astype(np.float64) - w
    na = np.linalg.norm(da)
    if na == 0:
        rows.append((0.0, key, 0.0, float(np.linalg.norm(db))))
        continue
    rows.append((float(np.linalg.norm(db - da) / na), key, float(na), float(np.linalg.norm(db))))
rows.sort(reverse=True)
print(f"{'relative difference':>20}  {'|Δa|':>10}  {'|Δb|':>10}  tensor")
for rel, key, na, nb in rows:
    print(f"{rel:20.3e}  {na:10.3e}  {nb:10.3e}  {key}")
FLOOR = 1e-6
bad = [r for r in rows if r[2] > FLOOR and r[0] > tolerance]
unmoved = [r for r in rows if r[2] <= FLOOR and r[3] > FLOOR]
print(f"{len(rows)} tensors, {len(bad)} over {tolerance}, {len(unmoved)} moved only on b")
sys.exit(1 if bad or unmoved else 0)

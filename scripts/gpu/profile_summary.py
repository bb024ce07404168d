#!/usr/bin/env python3
"""Sums cubecl's kernel profile log (CUBECL_DEBUG_OPTION=profile, CUBECL_DEBUG_LOG=FILE) by
kernel name: `python3 scripts/gpu/profile_summary.py FILE [TOP]`."""
import collections
import re
import sys

UNITS = {"ns": 1e-9, "µs": 1e-6, "us": 1e-6, "ms": 1e-3, "s": 1.0}
line_re = re.compile(r"^\|\s*([0-9.]+)(ns|µs|us|ms|s)\s*\|\s*(.*)$")
total = collections.defaultdict(float)
count = collections.Counter()
for line in open(sys.argv[1], errors="replace"):
    m = line_re.match(line.strip())
    if not m:
        continue
    name = m.group(3)[:150]
    total[name] += float(m.group(1)) * UNITS[m.group(2)]
    count[name] += 1
top = int(sys.argv[2]) if len(sys.argv) > 2 else 30
grand = sum(total.values())
print(f"{sum(count.values())} kernel runs, {grand * 1e3:.1f} ms in all")
for name, t in sorted(total.items(), key=lambda kv: -kv[1])[:top]:
    print(f"{t * 1e3:9.2f} ms {100 * t / grand:5.1f}% {count[name]:6d}x {t / count[name] * 1e6:9.1f} us  {name}")

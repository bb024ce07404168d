#!/usr/bin/env python3
"""Steps per second of a training run between its first log line at or after step 25 (kernel
compilation and autotuning are over by then) and its last: `steady_rate.py logging.jsonl`.
Prints 0 when the run logged too little. Assumes the run started at step 0 (train_speed is
counted from the start of the process's run)."""
import json
import sys

rows = [json.loads(l) for l in open(sys.argv[1]) if '"train_speed(iter/s)"' in l]
pts = [(r["global_step"], r["global_step"] / r["train_speed(iter/s)"]) for r in rows]
late = [p for p in pts if p[0] >= 25]
print(f"{(late[-1][0] - late[0][0]) / (late[-1][1] - late[0][1]):.3f}" if len(late) > 1 else "0")

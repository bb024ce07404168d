#!/usr/bin/env bash
# Nsight Compute on one launch of the flash attention kernel (bench-ops' 3072-position causal
# case, Mistral's heads): registers, occupancy, throughput and warp stalls.
# Usage: scripts/gpu/ncu_flash.sh   (report in $OUT/ncu_flash.txt)
set -uo pipefail
source "$(dirname "$0")/env.sh"
NCU=$(command -v ncu || ls /opt/nvidia/nsight-compute/*/ncu 2>/dev/null | head -1)
[ -n "$NCU" ] || { echo "no ncu"; exit 1; }
run() {
  timeout 200 "$NCU" --clock-control none "$@" --section LaunchStats --section Occupancy \
    --section SpeedOfLight --section WarpStateStats --section ComputeWorkloadAnalysis \
    --section MemoryWorkloadAnalysis --section SourceCounters \
    /tmp/bin/xtask bench-ops --heads 32,8,128 --prefill 3072 --iters 2 --flash "" > "$OUT/ncu_flash.txt" 2>&1
}
run -k regex:flash --launch-skip 1 --launch-count 1
if grep -q "No kernels were profiled" "$OUT/ncu_flash.txt"; then
  echo "no kernel named flash*; names seen:"
  timeout 200 "$NCU" --clock-control none --launch-count 200 --section LaunchStats \
    /tmp/bin/xtask bench-ops --heads 32,8,128 --prefill 3072 --iters 1 --flash "" 2>&1 \
    | grep -E "^  [A-Za-z_].*\(" | sort | uniq -c | sort -rn | head -30
fi
grep -vE "^==PROF==|^\{" "$OUT/ncu_flash.txt" | grep -E "Registers|Occupancy|Block Limit|Duration|Throughput|Stall|Shared Memory|Warp Cycles|Issue|Executed Ipc|Local|Spill|Pipe|Threads|Grid|Waves|Theoretical|Achieved|^  [a-z_]" | head -80

#!/bin/bash
# Digests of the simulation's traces, to show a refactor changes no behaviour:
#   .ci/sim-digest.sh OUT_DIR   (then diff the sha256sum of two OUT_DIRs)
# Eight seeds replayed with a full trace (3, 5 and 7 members) and the summary
# of 200 seeds per cluster size, in release mode.
set -euo pipefail
cd "$(dirname "$0")/.."
out=$1
mkdir -p "$out"
cargo test --release -p redhac-membership --test sim --no-run -q 2>/dev/null
for spec in 3:3000 3:3001 3:3002 3:3005 5:5000 5:5003 7:7000 7:7001; do
  n=${spec%%:*}; s=${spec##*:}
  REDHAC_SIM_SEED=$s cargo test -q --release -p redhac-membership --test sim "sim_${n}_nodes" \
    -- --nocapture --exact --test-threads 1 2>/dev/null | grep -E '^ +[0-9.]+ms n' > "$out/trace_$s.txt"
  echo "$s $(wc -l < "$out/trace_$s.txt") lines $(sha256sum < "$out/trace_$s.txt" | cut -c1-16)"
done
REDHAC_SIM_SEEDS=200 cargo test -q --release -p redhac-membership --test sim sim_ \
  -- --nocapture --test-threads 1 2>/dev/null | grep -o 'simulation:.*' \
  | sed 's/, [0-9.]* s)$/)/' | tee "$out/summary.txt"

#!/usr/bin/env bash
# Instructions per get hit, counted by callgrind (repeatable, unlike wall-clock
# time on a shared VM): raw moka, moka with a per-entry expiry policy, redhac.
# Each count is (run with N gets - run with 0 gets) / N.
#   benches/get_instructions.sh [N]      (default N = 200000; needs valgrind)
set -euo pipefail
cd "$(dirname "$0")/.."
n="${1:-200000}"
cargo build --release -q -p redhac --bench get_probe
probe="$(ls -t "${CARGO_TARGET_DIR:-target}"/release/deps/get_probe-* | grep -v '\.d$' | head -1)"
count() { valgrind --tool=callgrind --callgrind-out-file=/dev/null "$probe" "$1" "$2" 2>&1 | awk '/Collected/ {print $4}'; }
for system in raw expiry redhac; do
  base=$(count "$system" 0)
  total=$(count "$system" "$n")
  echo "$system $(( (total - base) / n )) instructions/get"
done

#!/usr/bin/env bash
# run.sh CMAKE PREFIX WORK SRC -- ctest driver for the C++ example (labels package, example):
# configure SRC against the backprop package installed in PREFIX, build in WORK, run a short
# training. Exit 2 (ctest: skipped) when the example's data package is missing.
set -euo pipefail
cmake=$1 prefix=$2 work=$3 src=$4
rm -rf "$work"
"$cmake" -S "$src" -B "$work" -DCMAKE_PREFIX_PATH="$prefix" -DCMAKE_BUILD_TYPE=Release
"$cmake" --build "$work"
rc=0
out=$("$work/cpp_regression" --epochs 5) || rc=$?
printf '%s\n' "$out"
[[ $rc -eq 0 ]] || exit "$rc"
last=$(tail -n 1 <<<"$out")
[[ $last =~ ^result:( [a-z_]+=[-+0-9.eE]+)+$ ]] || { echo "not a result line: $last" >&2; exit 1; }

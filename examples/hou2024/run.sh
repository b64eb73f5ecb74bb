#!/usr/bin/env bash
# The Fashion-MNIST comparisons of examples/hou2024 (see README.md), from the repository root:
#   examples/hou2024/run.sh [mlp] [lenet5]        (default: both, MLP first)
# Prints each run's wall time and its seed-level summary (summarize.py). Results go to
# ${RUNS:-runs}/hou2024-fashion-*.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
models=("$@")
[ ${#models[@]} -gt 0 ] || models=(mlp lenet5)
for model in "${models[@]}"; do
  out="${RUNS:-runs}/hou2024-fashion-$model"
  start=$(date +%s)
  noiseproof compare --config "$here/fashion_$model.yaml" --out "$out" --no-progress
  echo "$model: wall time $(( $(date +%s) - start )) s"
  python "$here/summarize.py" "$out"
done

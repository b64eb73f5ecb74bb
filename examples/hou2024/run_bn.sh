#!/usr/bin/env bash
# The BatchNorm comparison of examples/hou2024 (README.md, "ResNet-20"), from the repository root:
#   examples/hou2024/run_bn.sh [seed ...]        (default: seeds 0 1 2)
# One `noiseproof compare` per seed (so every finished seed holds all methods, paired), one
# thread, then the summary over the seeds done. Results go to ${RUNS:-runs}/hou2024-resnet20/.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
seeds=("$@")
[ ${#seeds[@]} -gt 0 ] || seeds=(0 1 2)
out="${RUNS:-runs}/hou2024-resnet20"
for seed in "${seeds[@]}"; do
  start=$(date +%s)
  OMP_NUM_THREADS=1 noiseproof compare --config "$here/fashion_resnet20_bn.yaml" \
    --seed "$seed" --out "$out/seed$seed" --no-progress
  echo "seed $seed: wall time $(( $(date +%s) - start )) s"
done
python "$here/summarize.py" "$out"/seed*

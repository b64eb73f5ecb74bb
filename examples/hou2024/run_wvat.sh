#!/usr/bin/env bash
# WVAT on its paper's protocol (README.md, "WVAT on its own protocol"), from the repository root:
#   examples/hou2024/run_wvat.sh [seed ...]        (default: seeds 0 1 2)
# Per seed, one `noiseproof compare` of fashion_vgg_wvat.yaml (SGD, forward noise, WVAT) and one
# of fashion_vgg_wvat_rho.yaml (WVAT at rho 0.02, the sensitivity check), one thread each; then
# the degradation table (clean - mean under variation, per seed) and the ratio to SGD's.
# Results go to ${RUNS:-runs}/hou2024-vgg-wvat/ and ${RUNS:-runs}/hou2024-vgg-wvat-rho/.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
seeds=("$@")
[ ${#seeds[@]} -gt 0 ] || seeds=(0 1 2)
out="${RUNS:-runs}/hou2024-vgg-wvat"
for seed in "${seeds[@]}"; do
  for grid in "" _rho; do
    start=$(date +%s)
    OMP_NUM_THREADS=1 noiseproof compare --config "$here/fashion_vgg_wvat$grid.yaml" \
      --seed "$seed" --out "${out}${grid/_/-}/seed$seed" --no-progress
    echo "fashion_vgg_wvat$grid seed $seed: wall time $(( $(date +%s) - start )) s"
  done
done
python "$here/degradation.py" "$out"/seed* "$out"-rho/seed*

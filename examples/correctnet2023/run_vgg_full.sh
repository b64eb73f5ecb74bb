#!/usr/bin/env bash
# VGG on full Fashion-MNIST at sigma 0.3 (fmnist_vgg_full.yaml): standard training, then
# `lipschitz` and `noise_injection` (trained at sigma 0.3), each followed by compensation
# placed by REINFORCE and by greedy search. From the repository root:
#   bash examples/correctnet2023/run_vgg_full.sh [OUT]
set -euo pipefail
OUT=${1:-runs/correctnet2023}
HERE=examples/correctnet2023
P="$OUT/fmnist_vgg_full"
start=$(date +%s)
noiseproof correct --config "$HERE/fmnist_vgg_full.yaml" --method standard --placement none \
  --out "$P/standard-s0.3" --no-progress
noiseproof correct --config "$HERE/fmnist_vgg_full.yaml" --out "$P/lipschitz-s0.3" --no-progress
noiseproof correct --config "$HERE/fmnist_vgg_full.yaml" --method noise_injection \
  --out "$P/noise_injection-s0.3" --no-progress
echo "fmnist_vgg_full: wall time $(( $(date +%s) - start )) s" | tee "$P/wall.txt"
python "$HERE/table.py" "$OUT"

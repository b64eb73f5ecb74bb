#!/usr/bin/env bash
# Second pass, after run.sh (same OUT), on the models run.sh trained (--checkpoint: no retraining):
#   bash examples/correctnet2023/run_extra.sh [OUT]
# For each part: both models at a moderate sigma (LeNet-5 0.5, VGG 0.3: standard training keeps
# 91% / 69% of its accuracy there), where compensation has something to
# work with; then the compensation stage again at the collapse sigma with the final compensation
# code (per-channel gain/offset and best-on-validation checkpoint, added after run.sh's first
# pass). Last, LeNet-5 only: noise injection alone, and lipschitz composed with noise injection.
set -euo pipefail
OUT=${1:-runs/correctnet2023}
HERE=examples/correctnet2023
for item in mnist_lenet5:0.5 fmnist_vgg:0.3; do
  part=${item%%:*} level=${item##*:}
  start=$(date +%s)
  P="$OUT/$part"
  noiseproof correct --config "$HERE/$part.yaml" --checkpoint "$P/standard/model.pt" \
    --level "$level" --placement none --out "$P/standard-s$level" --no-progress
  noiseproof correct --config "$HERE/$part.yaml" --checkpoint "$P/lipschitz/model.pt" \
    --level "$level" --out "$P/lipschitz-s$level" --no-progress
  noiseproof correct --config "$HERE/$part.yaml" --checkpoint "$P/lipschitz/model.pt" \
    --out "$P/lipschitz" --no-progress
  echo "$part second pass: wall time $(( $(date +%s) - start )) s" | tee "$P/wall-extra.txt"
done
start=$(date +%s)
P="$OUT/mnist_lenet5"
noiseproof correct --config "$HERE/mnist_lenet5_noise.yaml" --method noise_injection \
  --placement none --out "$P/noise_injection" --no-progress
noiseproof correct --config "$HERE/mnist_lenet5_noise.yaml" --out "$P/lipschitz-noise" \
  --no-progress
echo "mnist_lenet5 noise-injection rows: wall time $(( $(date +%s) - start )) s" \
  | tee "$P/wall-noise.txt"
python "$HERE/table.py" "$OUT"

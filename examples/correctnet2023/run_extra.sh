#!/usr/bin/env bash
# Second pass, after run.sh (same OUT), on the models run.sh trained (--checkpoint: no retraining):
#   flock /tmp/noiseproof-heavy.lock bash examples/correctnet2023/run_extra.sh [OUT]
# 1. the compensation stage again at the collapse sigma, with the final compensation code
#    (per-channel gain/offset, best-on-validation checkpoint; both added after run.sh's first pass);
# 2. both models at the moderate sigma 0.5, where compensation has something to work with;
# 3. LeNet-5 only: noise injection alone, and lipschitz composed with noise injection.
set -euo pipefail
OUT=${1:-runs/correctnet2023}
HERE=examples/correctnet2023
for part in mnist_lenet5 fmnist_vgg; do
  start=$(date +%s)
  P="$OUT/$part"
  noiseproof correct --config "$HERE/$part.yaml" --checkpoint "$P/lipschitz/model.pt" \
    --out "$P/lipschitz" --no-progress
  noiseproof correct --config "$HERE/$part.yaml" --checkpoint "$P/standard/model.pt" \
    --level 0.5 --placement none --out "$P/standard-s0.5" --no-progress
  noiseproof correct --config "$HERE/$part.yaml" --checkpoint "$P/lipschitz/model.pt" \
    --level 0.5 --out "$P/lipschitz-s0.5" --no-progress
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

#!/usr/bin/env bash
# CorrectNet (Eldebiky et al. 2023) reproduction. From the repository root:
#   bash examples/correctnet2023/run.sh [OUT]
# For each part: standard training (no compensation), the `lipschitz` regulariser followed by
# compensation placed by RL / greedy (/ exhaustive for LeNet-5), a sigma sweep of both base
# models, then the table (table.py) that README.md quotes.
set -euo pipefail
OUT=${1:-runs/correctnet2023}
HERE=examples/correctnet2023
PARTS=${PARTS:-"mnist_lenet5 fmnist_vgg"}
for part in $PARTS; do
  start=$(date +%s)
  noiseproof correct --config "$HERE/$part.yaml" --method standard --placement none \
    --out "$OUT/$part/standard" --no-progress
  noiseproof correct --config "$HERE/$part.yaml" --out "$OUT/$part/lipschitz" --no-progress
  for base in standard lipschitz; do
    noiseproof evaluate "$OUT/$part/$base/model.pt" --noise lognormal \
      --levels 0,0.3,0.5,0.8,1.0,1.3 --transfers 10 --out "$OUT/$part/sweep-$base" --no-progress \
      > "$OUT/$part/sweep-$base.log"
  done
  echo "$part: wall time $(( $(date +%s) - start )) s" | tee "$OUT/$part/wall.txt"
done
python "$HERE/table.py" "$OUT"

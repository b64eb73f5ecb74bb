#!/bin/sh
# Table 1 on the full training set (config_full.yaml): standard, forward noise 0.3,
# adversarial 0.25 and forward noise + adversarial 0.1 on all 54,000 training images for two
# passes; 100 transfers per zeta on the first 1,000 test images, the targeted attack at zeta
# 0.1 and the loss landscape; writes runs/buechel2022-full/ (about 50 min on 2 shared cores).
# Extra arguments go to `noiseproof compare` (e.g. --resume, or --set/--out for dropout + AWP).
set -e
cd "$(dirname "$0")/../.."
exec noiseproof compare --config examples/buechel2022/config_full.yaml --out runs/buechel2022-full \
    --no-progress --log csv "$@"

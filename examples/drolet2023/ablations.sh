#!/usr/bin/env bash
# Ablations of the Drolet 2023 reproduction (README.md, "Ablation"), regular training only:
# config.yaml with ONE training difference toggled per run (3 seeds x 2,000 transfers each,
# 2 draw sets, to fit a shared 2-core machine), then effects.py on the
# baseline for the differences that only change the simulated chips (no retraining needed:
# regular training never sees the crossbar).
#   bash examples/drolet2023/ablations.sh [OUT=runs/drolet2023-ablations]
# Each run's table is in OUT/<name>/summary.md, the chip variants in OUT/baseline/effects.md.
set -euo pipefail
out="${1:-runs/drolet2023-ablations}"
here="$(cd "$(dirname "$0")" && pwd)"
python="${PYTHON:-python}"
regular='methods=[{name: standard, label: regular}]'
run() {  # name, then --set overrides
    local name="$1"
    shift
    if [ ! -f "$out/$name/summary.json" ]; then
        "$python" "$here/run.py" --out "$out/$name" --no-progress --set "$regular" \
            --set transfers=2000 --set 'seeds=[0, 1, 2]' "$@" | tail -n 4
    fi
}
run baseline
# chip differences, on the baseline's networks: measured vs our old Gaussian 2 uS disturb,
# clipping, bias scale, and each effect off alone
"$python" "$here/effects.py" "$out/baseline" --transfers 2000
# (a) our old selection: best clean-validation epoch of 1000 instead of the final of 10,000
run select-best-of-1000 --set train.epochs=1000 --set train.select=clean
# (b) moons without class overlap: make_moons(noise=0.05)
run moons-noise-0.05 --set dataset.noise=0.05
# all differences at once: the previous README's protocol, re-run on today's chip streams
run old-protocol --set train.epochs=1000 --set train.select=clean --set model.init=default \
    --set dataset.noise=0.05 \
    --set 'noise=[{name: tio2_crossbar, disturb_model: gaussian, label: tio2}]'
# PyTorch's default initialisation instead of Xavier-uniform / biases 0.01
run init-default --set model.init=default

#!/usr/bin/env bash
# examples/chip-calibration (see README.md), from the repository root with the virtual
# environment on PATH: the digits MLP 64-64-10 (and a small CNN under PCM) on simulated chips,
# each chip also after per-chip calibration: PCM drift (pcm.yaml), ADC bits and ranges
# (adc.yaml), IR drop (irdrop.yaml).
# Results go to ${RUNS:-runs}/chip-calibration/<run> (an earlier run there is replaced); prints
# every table and the wall time of each run.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
out="${RUNS:-runs}/chip-calibration"

run() {  # run NAME CONFIG [--set KEY=VALUE ...]
  local name="$1" config="$2"
  shift 2
  local start
  start=$(date +%s)
  echo "== $name"
  noiseproof compare --config "$here/$config" "$@" --out "$out/$name" --overwrite --no-progress -q
  echo "wall time $(( $(date +%s) - start )) s"
}

# 1. PCM drift: 1 day, 30 days, 1 year; no / global / per-column compensation
run pcm pcm.yaml
#    the same on a small CNN (the Buechel et al. CNN with 2x2 kernels and 16 channels, for 8x8)
run pcm-cnn pcm.yaml --set "model={name: cnn, kernel_size: 2, channels: 16}"
# 2. ADC: 4, 6 and 8 bits, calibrated ranges (the config) and static ones (noise management
#    abs_max at the DAC, ADC range 12 full-scale outputs in every layer)
static=(--set forward.input_range=null --set forward.adc_range=12)
for bits in 4 6 8; do
  run "adc${bits}-calibrated" adc.yaml --set forward.adc_bits=$bits
  run "adc${bits}-static" adc.yaml --set forward.adc_bits=$bits "${static[@]}"
done
# 3. IR drop: 0, 1 and 5 Ohm per wire segment on 64x64 tiles, 5 Ohm on 128x128 tiles
for ohm in 0 1 5; do
  run "irdrop-${ohm}ohm" irdrop.yaml --set forward.ir_drop.wire_resistance_ohm=$ohm
done
run irdrop-5ohm-128 irdrop.yaml --set forward.ir_drop.tile=128x128

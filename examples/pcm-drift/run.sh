#!/usr/bin/env bash
# examples/pcm-drift (see README.md), from the repository root with the virtual environment on
# PATH: standard vs noise-trained MLP on a PCM chip from 1 s to 1 year, without and with global
# drift compensation. Results go to ${RUNS:-runs}/pcm-drift; prints the table and the wall time.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
out="${RUNS:-runs}/pcm-drift"
start=$(date +%s)
noiseproof compare --config "$here/config.yaml" --out "$out" --no-progress
echo "wall time $(( $(date +%s) - start )) s"

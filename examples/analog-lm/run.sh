#!/usr/bin/env bash
# examples/analog-lm (see README.md), from the repository root with the virtual environment on
# PATH: a character-level GPT trained four ways, read on PCM chips from 1 s to 1 year after
# programming (with and without global drift compensation) and under relative Gaussian
# mismatch. Results go to ${RUNS:-runs}/analog-lm; prints the tables and the wall time.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
out="${RUNS:-runs}/analog-lm"
start=$(date +%s)
noiseproof compare --config "$here/config.yaml" --out "$out" --no-progress
echo "wall time $(( $(date +%s) - start )) s"

#!/bin/sh
# The (reduced) spiking reproduction in one command: trains the four methods on digits-as-rows,
# evaluates 100 chips per zeta with mismatch on the weights only and with 8-bit weights +
# mismatch (table 1, $OUT/), then the same checkpoints with the neuron parameters on the chip
# too (table 2, $OUT/neurons/<checkpoint>/). OUT defaults to runs/buechel2022-snn.
# Extra arguments go to `noiseproof compare` (e.g. --resume, --seed 1,2).
set -e
cd "$(dirname "$0")/../.."
export OMP_NUM_THREADS="${OMP_NUM_THREADS:-1}"
OUT="${OUT:-runs/buechel2022-snn}"
noiseproof compare --config examples/buechel2022-snn/config.yaml --out "$OUT" --no-progress "$@"
for checkpoint in "$OUT"/checkpoints/*.pt; do
    name=$(basename "$checkpoint" .pt)
    noiseproof evaluate "$checkpoint" --config examples/buechel2022-snn/chip_neurons.yaml \
        --out "$OUT/neurons/$name" --no-progress
done

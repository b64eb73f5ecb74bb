"""Devices present on this machine: the CPU always, CUDA and MPS when torch sees them."""

from __future__ import annotations

import torch

DEVICES = ["cpu"]
if torch.cuda.is_available():
    DEVICES.append("cuda")
if torch.backends.mps.is_available():
    DEVICES.append("mps")

ABSENT = "cuda:99" if torch.cuda.is_available() else "cuda"
"""A device spelling that names no device here."""

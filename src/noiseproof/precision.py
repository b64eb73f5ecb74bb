"""Mixed precision: fp32 (no autocast), bf16 or fp16 autocast of forward passes, fp16 loss scaling.

torch.autocast runs matmuls and convolutions in the low precision and keeps reductions and
losses in float32 (Micikevicius et al. 2018, "Mixed Precision Training"); fp16 needs its loss
scaled so small gradients do not underflow (torch.amp.GradScaler), bf16 has float32's range
and needs no scaling. Parameters and optimiser state stay float32 throughout.
"""

from __future__ import annotations

import contextlib
from typing import Any, Literal

import torch

Precision = Literal["fp32", "bf16", "fp16"]
PRECISIONS: tuple[str, ...] = ("fp32", "bf16", "fp16")
_DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16}


def check_precision(value: Any, argument: str = "precision") -> str:
    """`value` if it is one of PRECISIONS, else a ValueError naming `argument`."""
    if value not in PRECISIONS:
        raise ValueError(f"{argument} must be one of {', '.join(PRECISIONS)}, got {value!r}")
    return value


def autocast(device: torch.device, precision: str = "fp32") -> contextlib.AbstractContextManager:
    """torch.autocast on `device` in `precision` (a no-op context for fp32)."""
    check_precision(precision)
    if precision == "fp32":
        return contextlib.nullcontext()
    return torch.autocast(device.type, dtype=_DTYPES[precision])


def grad_scaler(device: torch.device, precision: str = "fp32") -> torch.amp.GradScaler:
    """A GradScaler on `device`, enabled for fp16 only (else scale, step, update pass through)."""
    return torch.amp.GradScaler(device.type, enabled=check_precision(precision) == "fp16")

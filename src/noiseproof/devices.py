"""Which device a job runs on: 'auto' | 'cpu' | 'cuda' | 'cuda:N' | 'mps', checked to exist.

`auto` is the first CUDA device when torch sees one, else the CPU (MPS only when asked for).
A device that is not there is a ValueError naming the argument (one line on the command line).
Under torchrun with CUDA each process runs on its own GPU, cuda:LOCAL_RANK (`rank_device`).
"""

from __future__ import annotations

import re
from typing import Any

import torch
from torch import nn

from noiseproof.errors import NoiseproofError
from noiseproof.launch import launched, local_rank_from_env

DEVICE_HELP = "auto (CUDA when available, else CPU), cpu, cuda, cuda:N or mps"
"""What a device option accepts, in words (help texts and error messages)."""

_SPEC = re.compile(r"auto|cpu|mps|cuda(:\d+)?")


def _named(argument: str, message: str) -> str:
    return f"{argument}: {message}" if argument else message


def check_device_spec(value: Any, argument: str = "device") -> str:
    """`value` if it spells a device (see DEVICE_HELP), else a ValueError naming `argument`
    ('' leaves the name to the caller, e.g. a config field).

    Only the spelling is checked here; `resolve_device` checks that the device exists.
    """
    if isinstance(value, torch.device):
        value = str(value)
    if not isinstance(value, str) or not _SPEC.fullmatch(value.strip().lower()):
        raise ValueError(_named(argument, f"expected {DEVICE_HELP}, got {value!r}"))
    return value.strip().lower()


def resolve_device(value: Any = "auto", argument: str = "device") -> torch.device:
    """The torch.device `value` names (None or 'auto': CUDA when available, else the CPU).

    ValueError naming `argument` when the spelling is wrong or the device is not present.
    """
    spec = "auto" if value is None else check_device_spec(value, argument)
    if spec == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(spec)
    if device.type == "cuda":
        count = torch.cuda.device_count() if torch.cuda.is_available() else 0
        if count == 0:
            built = "" if torch.backends.cuda.is_built() else f", torch {torch.__version__}"
            raise ValueError(
                _named(argument, f"{spec!r} is not available (no CUDA device here{built})")
            )
        if device.index is not None and device.index >= count:
            raise ValueError(
                _named(argument, f"{spec!r} is not available (CUDA devices: 0..{count - 1})")
            )
    if device.type == "mps" and not torch.backends.mps.is_available():
        raise ValueError(_named(argument, f"{spec!r} is not available (no MPS device here)"))
    return device


def rank_device(device: torch.device) -> torch.device:
    """The device this process trains on: cuda:LOCAL_RANK for a CUDA device under torchrun
    (one GPU per process), `device` otherwise. A CUDA index other than LOCAL_RANK and MPS
    under torchrun are refused in one line."""
    if not launched():
        return device
    if device.type == "mps":
        raise NoiseproofError("device 'mps': training under torchrun runs on cpu or cuda")
    if device.type != "cuda":
        return device
    local = local_rank_from_env()
    if device.index is not None and device.index != local:
        raise NoiseproofError(
            f"device {str(device)!r}: under torchrun every process trains on cuda:LOCAL_RANK "
            f"(here cuda:{local}); give --device cuda or auto"
        )
    return torch.device("cuda", local)


def model_device(model: nn.Module) -> torch.device:
    """The device of the model's first parameter (else buffer); the CPU for a tensorless one."""
    for tensor in (*model.parameters(), *model.buffers()):
        return tensor.device
    return torch.device("cpu")


def accumulator_dtype(device: torch.device) -> torch.dtype:
    """float64 for sums kept on `device` (float32 on MPS, which has no float64)."""
    return torch.float32 if device.type == "mps" else torch.float64

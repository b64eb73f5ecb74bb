"""Argument checks shared by the evaluation functions of the Python API (one clear error each)."""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn

from noiseproof.inputs import check_inputs, count


def check_evaluation_arguments(model: Any, x: Any, y: Any, x_name: str, y_name: str) -> None:
    """TypeError/ValueError naming the argument unless `model` is an nn.Module, `x` a batch of
    inputs (noiseproof.inputs.check_inputs) and `y` a 1-d integer tensor of the same length."""
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    check_inputs(x, x_name)
    if not isinstance(y, Tensor) or y.dim() != 1 or y.is_floating_point() or y.is_complex():
        raise TypeError(f"{y_name} must be a 1-d integer tensor of class indices")
    if len(y) != count(x):
        raise ValueError(f"{x_name} and {y_name} differ in length ({count(x)} vs {len(y)})")
    if not len(y):
        raise ValueError(f"{x_name} holds no examples")


def check_generator(generator: Any) -> torch.Generator:
    """`generator` if it is a torch.Generator: every draw takes an explicit one (no global RNG)."""
    if not isinstance(generator, torch.Generator):
        raise TypeError(
            "generator must be a torch.Generator (e.g. torch.Generator().manual_seed(0)), "
            f"got {type(generator).__name__}: draws never come from the global random state"
        )
    return generator


def check_count(value: Any, name: str, minimum: int = 1) -> int:
    """`value` if it is an int >= minimum (bools refused)."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{name} must be an int, got {value!r}")
    if value < minimum:
        raise ValueError(f"{name} must be >= {minimum}, got {value}")
    return value

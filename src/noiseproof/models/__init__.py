"""Built-in models (MLP, Buechel CNN, LeNet-5, VGG, ResNets, spiking, GPT) and `build_model`."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from torch import nn

from noiseproof.errors import NoiseproofError
from noiseproof.models.base import ModelSpec, models
from noiseproof.registry import import_modules

import_modules(__name__, __path__)  # every module registers its models

__all__ = ["ModelSpec", "build_model", "models"]


def build_model(
    spec: str | Mapping[str, Any] | ModelSpec, input_shape: tuple[int, ...], num_outputs: int
) -> nn.Module:
    """A fresh module for `spec` (name, {'name': ..., **params} or ModelSpec) on this data.

    >>> import noiseproof as nf
    >>> model = nf.build_model({"name": "mlp", "hidden": [32]}, (64,), 10)
    >>> sum(p.numel() for p in model.parameters())  # 64*32 + 32 + 32*10 + 10
    2410
    """
    if isinstance(num_outputs, bool) or not isinstance(num_outputs, int):
        raise TypeError(f"num_outputs must be an int, got {num_outputs!r}")
    if not isinstance(input_shape, tuple | list) or not all(
        isinstance(d, int) and not isinstance(d, bool) and d > 0 for d in input_shape
    ):
        raise TypeError(f"input_shape must be a tuple of positive ints, got {input_shape!r}")
    if num_outputs < 1:
        raise NoiseproofError(f"a model needs at least one output, got num_outputs={num_outputs}")
    return models.create(spec).create(tuple(input_shape), num_outputs)

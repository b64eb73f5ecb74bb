"""Built-in models (MLP, Buechel CNN, LeNet-5, VGG, CIFAR ResNets) and `build_model`."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from torch import nn

from noiseproof.errors import NoiseproofError
from noiseproof.models import cnn, mlp, resnet, vgg  # noqa: F401  (registers the models)
from noiseproof.models.base import ModelSpec, models

__all__ = ["ModelSpec", "build_model", "models"]


def build_model(
    spec: str | Mapping[str, Any] | ModelSpec, input_shape: tuple[int, ...], num_outputs: int
) -> nn.Module:
    """A fresh module for `spec` (name, {'name': ..., **params} or ModelSpec) on this data."""
    if num_outputs < 1:
        raise NoiseproofError(f"a model needs at least one output, got num_outputs={num_outputs}")
    return models.create(spec).build(tuple(input_shape), num_outputs)

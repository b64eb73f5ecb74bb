"""Noise models: one chip's parameter non-idealities, registered by name."""

from collections.abc import Mapping
from typing import Any

from noiseproof.noise.base import NoiseModel, PerTensorNoise, noise_models
from noiseproof.registry import import_modules

import_modules(__name__, __path__)  # every module registers its noise models


def create_noise(spec: str | Mapping[str, Any] | NoiseModel) -> NoiseModel:
    """A noise model from a name, a {'name': ..., **params} mapping, or a NoiseModel.

    >>> import torch, noiseproof as nf
    >>> noise = nf.create_noise({"name": "relative_gaussian", "zeta": 0.1})
    >>> noise.sample({"w": torch.ones(3)}, nf.generator(0))["w"]  # w (1 + 0.1 n), n ~ N(0, 1)
    tensor([1.1238, 0.9339, 1.0177])
    """
    return noise_models.create(spec)


__all__ = ["NoiseModel", "PerTensorNoise", "create_noise", "noise_models"]

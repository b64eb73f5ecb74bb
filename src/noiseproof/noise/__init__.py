"""Noise models: one chip's parameter non-idealities, registered by name."""

from noiseproof.noise.base import NoiseModel, PerTensorNoise, noise_models
from noiseproof.registry import import_modules

import_modules(__name__, __path__)  # every module registers its noise models


def create_noise(spec) -> NoiseModel:
    """A noise model from a name, a {'name': ..., **params} mapping, or a NoiseModel."""
    return noise_models.create(spec)


__all__ = ["NoiseModel", "PerTensorNoise", "create_noise", "noise_models"]

"""Quantised conductances: each weight rounded to one of n levels, symmetric per layer."""

from __future__ import annotations

from typing import ClassVar

import torch
from pydantic import Field
from torch import Tensor

from noiseproof.noise.base import PerTensorNoise, noise_models


@noise_models.register("quantize")
class Quantize(PerTensorNoise):
    """Uniform symmetric quantisation to `levels` values in [-max|W|, max|W|] per layer.

    The grid is {-max|W| + k * step}, step = 2 max|W| / (levels - 1), k = 0..levels-1, so an odd
    number of levels contains 0. Deterministic (no draw): a programming resolution of a device
    with `levels` distinguishable conductance states. The sweep varies `levels`.
    """

    level_field: ClassVar[str] = "levels"
    levels: int = Field(16, ge=2, description="number of conductance levels per layer")

    def perturb(self, name: str, tensor: Tensor, generator: torch.Generator) -> Tensor:
        """Round each element to the nearest of the layer's `levels` grid points."""
        top = tensor.detach().abs().max()
        if top == 0:
            return tensor.clone()
        step = 2 * top / (self.levels - 1)
        index = torch.round((tensor + top) / step).clamp(0, self.levels - 1)
        # (2k - (n-1)) / (n-1) * top rather than k * step - top: exactly symmetric, exact 0 for
        # odd n and exact +-top at the ends, so quantising twice changes nothing.
        return (2 * index - (self.levels - 1)) / (self.levels - 1) * top

"""Gaussian parameter noise: relative mismatch and additive noise scaled to the layer maximum."""

from __future__ import annotations

from typing import ClassVar, Literal

import torch
from pydantic import Field
from torch import Tensor

from noiseproof.noise.base import PerTensorNoise, noise_models, standard_normal


@noise_models.register("relative_gaussian")
class RelativeGaussian(PerTensorNoise):
    """Relative Gaussian mismatch theta' = theta * (1 + zeta * N(0,1)) (Buechel et al. 2022).

    Each parameter keeps its sign on average and varies in proportion to its magnitude, as
    device-to-device mismatch does in mixed-signal neuromorphic chips (Rockpool's mismatch model).
    """

    level_field: ClassVar[str] = "zeta"
    zeta: float = Field(
        0.2, ge=0.0, allow_inf_nan=False, description="relative std of the mismatch"
    )

    def perturb(self, name: str, tensor: Tensor, generator: torch.Generator) -> Tensor:
        """theta * (1 + zeta * N(0,1)), one independent draw per element."""
        return tensor * (1.0 + self.zeta * standard_normal(tensor, generator))


@noise_models.register("additive_gaussian")
class AdditiveGaussian(PerTensorNoise):
    """Additive noise scaled to the layer maximum w' = w + eta * max|W| * N(0,1) (Joshi 2020).

    `scale="layer"` uses one max|W| per tensor; `scale="channel"` one per output channel
    (dimension 0), the common per-column variant. Used by Hou et al. 2024 with eta = 0.2.
    """

    level_field: ClassVar[str] = "eta"
    eta: float = Field(0.1, ge=0.0, allow_inf_nan=False, description="std relative to max|W|")
    scale: Literal["layer", "channel"] = Field("layer", description="max|W| per layer or channel")

    def perturb(self, name: str, tensor: Tensor, generator: torch.Generator) -> Tensor:
        """w + eta * max|W| * N(0,1) with max over the layer or over each output channel."""
        noise = standard_normal(tensor, generator)
        return tensor + self.eta * layer_max(tensor, self.scale) * noise


def layer_max(tensor: Tensor, scale: Literal["layer", "channel"]) -> Tensor:
    """max|W| over the whole tensor, or over each output channel (broadcastable to `tensor`)."""
    magnitude = tensor.detach().abs()
    if scale == "layer" or tensor.dim() < 2:
        return magnitude.max()
    return magnitude.flatten(1).amax(dim=1).view(-1, *([1] * (tensor.dim() - 1)))

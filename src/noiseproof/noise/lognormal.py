"""Log-normal multiplicative variation, the device model of CorrectNet (Eldebiky et al. 2023)."""

from __future__ import annotations

from typing import ClassVar

import torch
from pydantic import Field
from torch import Tensor

from noiseproof.noise.base import PerTensorNoise, noise_models, standard_normal


@noise_models.register("lognormal")
class LogNormal(PerTensorNoise):
    """Log-normal variation w' = w * exp(sigma * N(0,1)) (Eldebiky et al. 2023, CorrectNet).

    The factor is always positive, so weights never change sign; its mean is exp(sigma^2 / 2).
    """

    level_field: ClassVar[str] = "sigma"
    sigma: float = Field(0.5, ge=0.0, allow_inf_nan=False, description="std of the log factor")

    def perturb(self, name: str, tensor: Tensor, generator: torch.Generator) -> Tensor:
        """w * exp(sigma * N(0,1)), one independent draw per element."""
        return tensor * torch.exp(self.sigma * standard_normal(tensor, generator))

"""Stuck-at faults: a fraction of devices ignore programming and sit at an extreme conductance."""

from __future__ import annotations

from typing import ClassVar

import torch
from pydantic import Field
from torch import Tensor

from noiseproof.chip import Params
from noiseproof.noise.base import PerTensorNoise, noise_models, uniform


@noise_models.register("stuck_at")
class StuckAt(PerTensorNoise):
    """A fraction p of weights stuck at 0 (open / HRS) or at +-max|W| (short / LRS).

    Each weight is faulty with probability p; a faulty weight is stuck high with probability
    `high_share` (value max|W| of its layer with a random sign, since either device of a
    differential pair can be the shorted one), else stuck at 0. The sweep varies p.
    """

    level_field: ClassVar[str] = "p"
    p: float = Field(0.01, ge=0.0, le=1.0, allow_inf_nan=False, description="fault probability")
    high_share: float = Field(
        0.5, ge=0.0, le=1.0, allow_inf_nan=False, description="share of faults stuck at +-max|W|"
    )

    def perturb(self, name: str, tensor: Tensor, generator: torch.Generator) -> Tensor:
        """Replace faulty elements by 0 or +-max|W|; healthy ones are unchanged."""
        return self.stuck(tensor, generator)[0]

    def stuck(self, tensor: Tensor, generator: torch.Generator) -> tuple[Tensor, Tensor]:
        """(tensor with faulty elements replaced, bool mask of the faulty elements)."""
        faulty = uniform(tensor, generator) < self.p
        high = uniform(tensor, generator) < self.high_share
        sign = torch.where(uniform(tensor, generator) < 0.5, -1.0, 1.0).to(tensor.dtype)
        stuck_value = torch.where(high, sign * tensor.detach().abs().max(), 0.0)
        return torch.where(faulty, stuck_value, tensor), faulty

    @torch.no_grad()
    def sample_with_faults(
        self, params: Params, generator: torch.Generator
    ) -> tuple[Params, dict[str, Tensor]]:
        """One transfer (the same draws as `sample`) and the mask of stuck weights per tensor."""
        pairs = {name: self.stuck(tensor, generator) for name, tensor in params.items()}
        return {n: p[0] for n, p in pairs.items()}, {n: p[1] for n, p in pairs.items()}

"""Helpers several training methods share (not a method: it registers nothing)."""

from __future__ import annotations

from noiseproof.errors import NoiseproofError
from noiseproof.methods.base import StepContext
from noiseproof.noise.base import NoiseModel


def training_noise(
    own: NoiseModel | None, level: float | None, ctx: StepContext, method: str
) -> NoiseModel:
    """The noise a method trains with: its own model, else the experiment's, at `level` if given
    (the noise-aware training of Joshi et al. 2020 draws its chips from it)."""
    noise = own or ctx.noise
    if noise is None:
        raise NoiseproofError(f"method '{method}' needs a noise model (set 'noise' on the method)")
    return noise if level is None else noise.with_level(level)

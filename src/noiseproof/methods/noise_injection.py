"""Forward noise injection: train through a fresh noisy draw, update the clean weights."""

from __future__ import annotations

from pydantic import Field
from torch import Tensor

from noiseproof.chip import detached, straight_through
from noiseproof.methods.base import Method, OptionalNoise, StepContext, methods
from noiseproof.methods.common import training_noise


@methods.register("noise_injection")
class NoiseInjection(Method):
    """Forward noise injection (Joshi et al. 2020; Buechel et al. 2022 'forward noise').

    Every step draws a new chip from the noise model and computes the loss through it,
    theta_n = theta + stopgrad(noise(theta) - theta), so the gradient of CE(f(x; theta_n), y)
    is applied to the clean weights theta.
    """

    noise: OptionalNoise = Field(None, description="noise model (default: the experiment's)")
    level: float | None = Field(
        None, ge=0.0, allow_inf_nan=False, description="training level (default: the model's own)"
    )

    def terms(self, ctx: StepContext, x: Tensor, y: Tensor) -> dict[str, Tensor]:
        """{'task': task loss of the forward through one fresh noisy draw}."""
        noise = training_noise(self.noise, self.level, ctx, "noise_injection")
        noisy = straight_through(ctx.params, noise.sample(detached(ctx.params), ctx.generator))
        return {"task": ctx.task.loss(ctx.forward(noisy, x), y)}

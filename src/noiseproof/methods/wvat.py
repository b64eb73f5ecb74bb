"""WVAT, weight variation-aware training (ICLR 2023 submission): random or adversarial variation.

Per mini-batch, with probability p the weights get a random variation drawn from the noise
model, otherwise a gradient-ascent variation (one normalised step along the loss gradient, as in
SAM / AWP); the gradient is taken at w + delta and delta is removed again before the optimiser
step ("weight reverse"). Here the removal is exact by construction: the loss is computed through
w + stopgrad(delta), so the gradient at w + delta lands on w itself and w is never modified;
the optimiser's momentum and weight decay (SGD: the paper's baseline) then act on w, as after a
literal in-place reverse (tests/reference/wvat_reference.py, on a BatchNorm VGG).
The paper publishes neither the variation's size nor p: both are options (p = 0.5 by default).
"""

from __future__ import annotations

from typing import ClassVar, Literal, cast

import torch
from pydantic import Field
from torch import Tensor

from noiseproof.bounds import attack_split
from noiseproof.chip import Params, detached, scratch_buffers, straight_through
from noiseproof.methods.base import Method, OptionalNoise, StepContext, methods
from noiseproof.methods.common import training_noise
from noiseproof.physical import limit

EPS = 1e-12


def ascent_step(
    params: Params, grads: Params, rho: float, norm: Literal["layer", "adaptive", "sign"]
) -> Params:
    """One normalised gradient-ascent variation delta of radius rho relative to the weights.

    layer (AWP, Wu et al. 2020): delta_l = rho * ||w_l|| * g_l / ||g_l|| per tensor;
    adaptive (ASAM, Kwon et al. 2021): delta = rho * |w|^2 g / || |w| g || over all tensors;
    sign (relative l-inf box, as Buechel et al. 2022): delta = rho * |w| * sign(g).
    A zero gradient gives a zero delta.
    """
    if norm == "layer":
        return {
            n: rho * w.norm() * grads[n] / grads[n].norm().clamp_min(EPS) for n, w in params.items()
        }
    if norm == "sign":
        return {n: rho * w.abs() * grads[n].sign() for n, w in params.items()}
    squares = ((params[n].abs() * g).square().sum() for n, g in grads.items())
    scaled = torch.sqrt(cast(Tensor, sum(squares)))  # grads is not empty: a tensor, never 0
    return {n: rho * w.square() * grads[n] / scaled.clamp_min(EPS) for n, w in params.items()}


@methods.register("wvat")
class WVAT(Method):
    """WVAT (ICLR 2023 submission): per batch, a random (prob. p) or gradient-ascent variation.

    With probability p: delta = noise(w) - w, one draw of the noise model (p = 1 is forward
    noise training). Otherwise: g = grad CE(f(x; w), y) at the clean weights (an extra forward
    and backward, with autograd.grad), delta = `ascent_step(w, g, rho, ascent)` (p = 0 is a
    SAM/AWP-like step). Then loss 'task' = CE(f(x; w + stopgrad(delta)), y): its gradient is the
    gradient at w + delta, and the optimiser steps w as it stands (delta removed). The coin is
    drawn from the training generator only when 0 < p < 1. rho and the norm are not published:
    our defaults are rho = 0.1 relative to each layer's norm (the AWP gamma = 0.1 baseline of
    Buechel et al. 2022). The probe forward runs on scratch copies of the buffers. On-chip
    neuron parameters (spiking models) are varied with the weights in both branches, and
    w + delta is clamped into their physical ranges (bounds.attack_split, physical.limit).
    """

    precisions: ClassVar[tuple[str, ...]] = ("fp32", "bf16")
    precision_note: ClassVar[str] = "its inner gradients would underflow in fp16 unscaled"

    p: float = Field(
        0.5, ge=0.0, le=1.0, allow_inf_nan=False, description="probability of a random variation"
    )
    rho: float = Field(
        0.1, ge=0.0, allow_inf_nan=False, description="ascent radius relative to the weights"
    )
    ascent: Literal["layer", "adaptive", "sign"] = Field(
        "layer", description="ascent normalisation: layer (AWP), adaptive (ASAM), sign (l-inf)"
    )
    noise: OptionalNoise = Field(None, description="noise model (default: the experiment's)")
    level: float | None = Field(
        None, ge=0.0, allow_inf_nan=False, description="training level (default: the model's own)"
    )

    def random_branch(self, ctx: StepContext) -> bool:
        """True for a random variation: always at p = 1, never at p = 0, else a coin with p."""
        if self.p in (0.0, 1.0):
            return self.p == 1.0
        coin = torch.rand((), generator=ctx.generator, device=ctx.generator.device)
        return bool(coin < self.p)  # the one read per step: it chooses the branch

    def variation(self, ctx: StepContext, x: Tensor, y: Tensor) -> Params:
        """The perturbed weights w + delta (detached) for this batch, neuron parameters within
        their physical ranges."""
        clean = detached(ctx.params)
        if self.random_branch(ctx):
            noise = training_noise(self.noise, self.level, ctx, "wvat")
            return noise.sample(clean, ctx.generator)
        weights, on_chip_buffers = attack_split(ctx.model, clean)
        probe = {n: w.requires_grad_(True) for n, w in detached(weights).items()}
        point = {**scratch_buffers(ctx.model), **on_chip_buffers, **probe}
        with torch.enable_grad():
            loss = ctx.task.loss(ctx.forward(point, x), y)
            grads = torch.autograd.grad(loss, list(probe.values()), allow_unused=True)
        found = dict(zip(probe, grads, strict=True))
        grads_by_name = {
            n: torch.zeros_like(w) if found.get(n) is None else found[n] for n, w in clean.items()
        }
        delta = ascent_step(clean, grads_by_name, self.rho, self.ascent)
        return {n: limit(n, w + delta[n]) for n, w in clean.items()}

    def terms(self, ctx: StepContext, x: Tensor, y: Tensor) -> dict[str, Tensor]:
        """{'task': CE at w + delta, with the gradient applied to w (weight reverse)}."""
        varied = straight_through(ctx.params, self.variation(ctx, x, y))
        return {"task": ctx.task.loss(ctx.forward(varied, x), y)}

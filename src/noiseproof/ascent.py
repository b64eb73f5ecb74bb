"""Projected sign-gradient ascent inside the relative box |theta* - theta| <= zeta |theta|.

The parameter attack of Buechel, Faber & Muir (ICLR 2022, eq. 2-3), used by adversarial
training (noiseproof.methods.adversarial, awp) and by the inference-time targeted attack
(noiseproof.evaluation.attack), so that evaluation needs nothing from the methods:

    r_0      = clip(initial_std * N(0,1), -zeta, zeta)
    r_{k+1}  = clip(r_k + zeta / n_steps * sign(grad_r objective), -zeta, zeta)
    theta*_k = theta + |theta| * r_k

`ascend` is the loop, in whatever coordinates its caller keeps the iterate. `sign_ascent` keeps
it in absolute coordinates (theta* itself, box and step |theta|-scaled, each neuron parameter's
box cut to its physical range); the targeted attack keeps it in relative coordinates r. Both give
the same iterates in exact arithmetic (d theta*/d r = |theta| >= 0 leaves the gradient's sign
unchanged wherever theta != 0); their float roundings differ, and each keeps its own so that
results stay bit for bit what they were.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

import torch
from torch import Tensor

from noiseproof.chip import Params
from noiseproof.noise.base import standard_normal
from noiseproof.physical import limit

Gradient = Callable[[Params], Sequence[Tensor | None]]
"""The gradient of the objective w.r.t. each iterate tensor (None: it does not depend on it)."""


def starting_offsets(
    clean: Mapping[str, Tensor], zeta: float, initial_std: float, generator: torch.Generator
) -> Params:
    """r_0 = clip(initial_std * N(0,1), -zeta, zeta) per tensor (Buechel et al. 2022's start);
    zeros, with no draw, when initial_std is 0."""
    start = {}
    for name, t in clean.items():
        r = torch.zeros_like(t)
        if initial_std > 0:
            r.copy_(standard_normal(t, generator)).mul_(initial_std).clamp_(-zeta, zeta)
        start[name] = r
    return start


def ascend(
    start: Mapping[str, Tensor],
    gradient: Gradient,
    *,
    step: Mapping[str, Tensor | float],
    low: Mapping[str, Tensor | float],
    high: Mapping[str, Tensor | float],
    n_steps: int,
) -> Params:
    """n_steps of projected sign ascent: x <- clip(x + step * sign(gradient(x)), low, high).

    `gradient` receives the iterates as leaves requiring grad; a tensor whose gradient is None
    stays where it is. The iterates are updated in place (`start` is consumed) and returned
    detached.
    """
    state = dict(start)
    for _ in range(n_steps):
        leaves = {name: x.requires_grad_(True) for name, x in state.items()}
        grads = gradient(leaves)
        with torch.no_grad():
            for (name, x), g in zip(leaves.items(), grads, strict=True):
                x = x.detach()
                if g is not None:
                    x.add_(torch.sign(g).mul_(step[name]))
                    # bounds come as two tensors (sign_ascent) or two numbers (the attack)
                    torch.clamp(x, low[name], high[name], out=x)  # type: ignore[arg-type]
                state[name] = x
    return state


def sign_ascent(
    clean: Mapping[str, Tensor],
    objective,
    *,
    zeta: float,
    n_steps: int,
    initial_std: float,
    generator: torch.Generator,
    buffers: Mapping[str, Tensor] | None = None,
) -> Params:
    """Relative offsets r, |r| <= zeta, found by n_steps of projected sign-gradient ascent.

    Starts at r = initial_std * N(0,1) (clipped into the box; no draw when 0), then n_steps times
    r <- clip(r + zeta / n_steps * sign(d objective / d r), -zeta, zeta), where
    objective(params) -> scalar is evaluated at theta* = theta + |theta| * r (theta detached),
    with `buffers` added to its input. Since d theta*/d r = |theta| >= 0, this is the paper's
    step zeta * |theta| / n_steps * sign(grad_theta*) followed by the projection onto the box
    zeta * |theta| (Buechel et al. 2022, eq. 2). A neuron parameter's box is cut to its physical
    range (noiseproof.physical.limit), so no iterate leaves it. Returns the offsets, detached.
    """
    extra = dict(buffers or {})
    # The loop runs in absolute coordinates (leaves theta*, bounds precomputed): the same
    # iterates as in r, without back-propagating through theta + |theta| * r at every step.
    theta = {name: t.detach() for name, t in clean.items()}
    magnitude = {name: t.abs() for name, t in theta.items()}
    start = starting_offsets(theta, zeta, initial_std, generator)
    star = {n: limit(n, torch.addcmul(t, magnitude[n], start[n])) for n, t in theta.items()}
    step = {name: mag * (zeta / n_steps) for name, mag in magnitude.items()}
    low = {n: limit(n, t - zeta * magnitude[n]) for n, t in theta.items()}
    high = {n: limit(n, t + zeta * magnitude[n]) for n, t in theta.items()}

    def gradient(leaves: Params) -> Sequence[Tensor | None]:
        return torch.autograd.grad(
            objective({**extra, **leaves}), list(leaves.values()), allow_unused=True
        )

    star = ascend(star, gradient, step=step, low=low, high=high, n_steps=n_steps)
    offset = {}
    for name, t in theta.items():
        mag = magnitude[name]
        safe = torch.where(mag > 0, mag, torch.ones_like(mag))
        r = torch.where(mag > 0, (star[name] - t) / safe, torch.zeros_like(mag))
        offset[name] = r.clamp_(-zeta, zeta)
    return offset

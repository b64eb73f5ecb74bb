"""A literal WVAT gradient-ascent step (p = 0): perturb the weights in place, back-propagate,
reverse the perturbation, then step the optimiser, as the WVAT description reads.

Uses .backward() and in-place parameter edits on a module (what noiseproof avoids), so it is
an independent check of the functional implementation.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


def wvat_ascent_step_inplace(
    model: nn.Module, x: torch.Tensor, y: torch.Tensor, rho: float, lr: float
) -> None:
    """One SGD step (no momentum) of WVAT with an AWP-style layer-normalised ascent variation.

    delta_l = rho * ||w_l|| * g_l / ||g_l||, g = grad of CE at w; gradient at w + delta;
    delta removed; w -= lr * gradient. Every parameter of `model` is treated as on-chip.
    """
    params = list(model.parameters())
    model.zero_grad()
    F.cross_entropy(model(x), y).backward()
    deltas = []
    with torch.no_grad():
        for p in params:
            g = p.grad
            delta = rho * p.norm() * g / g.norm().clamp_min(1e-12)
            p.add_(delta)
            deltas.append(delta)
    model.zero_grad()
    F.cross_entropy(model(x), y).backward()
    with torch.no_grad():
        for p, delta in zip(params, deltas, strict=True):
            p.sub_(delta)  # weight reverse
    torch.optim.SGD(params, lr=lr).step()

"""A literal WVAT gradient-ascent step (p = 0): perturb the weights in place, back-propagate,
reverse the perturbation, then step the optimiser, as the WVAT description reads.

Uses .backward() and in-place parameter edits on a module (what noiseproof avoids), so it is
an independent check of the functional implementation.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn


def wvat_ascent_step_inplace(
    model: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    rho: float,
    lr: float,
    on_chip: Sequence[str] | None = None,
    optimizer: torch.optim.Optimizer | None = None,
) -> None:
    """One optimiser step of WVAT with an AWP-style layer-normalised ascent variation.

    delta_l = rho * ||w_l|| * g_l / ||g_l|| on the on-chip parameters `on_chip` (names; None:
    every parameter), g = grad of CE at w; gradient at w + delta; delta removed; then
    `optimizer.step()` (None: plain SGD with `lr`, no momentum), so weight decay and momentum
    act on the reversed weights w, as the paper's SGD does after its weight reverse.
    """
    named = dict(model.named_parameters())
    chip = [named[n] for n in (on_chip if on_chip is not None else named)]
    model.zero_grad()
    F.cross_entropy(model(x), y).backward()
    deltas = []
    with torch.no_grad():
        for p in chip:
            g = p.grad
            delta = rho * p.norm() * g / g.norm().clamp_min(1e-12)
            p.add_(delta)
            deltas.append(delta)
    model.zero_grad()
    F.cross_entropy(model(x), y).backward()
    with torch.no_grad():
        for p, delta in zip(chip, deltas, strict=True):
            p.sub_(delta)  # weight reverse
    (optimizer or torch.optim.SGD(list(named.values()), lr=lr)).step()

"""A literal AMP step (Zheng et al., CVPR 2021, Algorithm 1): perturb the parameters in place by
N projected gradient-ascent steps, back-propagate at the perturbed point, restore the
parameters, then step the optimiser.

Uses .backward() and in-place edits of the module's parameters (what noiseproof avoids), so it
is an independent check of the functional implementation (noiseproof.methods.amp).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import torch
import torch.nn.functional as F
from torch import nn


def amp_step_inplace(
    model: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    optimizer: torch.optim.Optimizer,
    *,
    epsilon: float,
    inner_lr: float,
    inner_steps: int,
    on_chip: Sequence[str] | None = None,
    per_tensor: bool = False,
    loss_fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor] = F.cross_entropy,
) -> list[float]:
    """One optimiser step of AMP on the parameters named `on_chip` (None: every parameter).

    Delta = 0; N times: Delta += inner_lr * grad at theta + Delta, then Delta *=
    epsilon / ||Delta|| if ||Delta|| > epsilon (the norm over all perturbed parameters, or per
    parameter with `per_tensor`), and the parameters are set to theta + Delta. Then the gradient
    at theta + Delta, theta restored, `optimizer.step()`. The buffers (BatchNorm statistics)
    are saved before the ascent forwards and restored after them, so only the final forward
    updates them. Returns ||Delta|| after each ascent step (global norm).
    """
    named = dict(model.named_parameters())
    chip = [named[n] for n in (on_chip if on_chip is not None else named)]
    theta = [p.detach().clone() for p in chip]
    delta = [torch.zeros_like(p) for p in chip]
    saved_buffers = {n: b.detach().clone() for n, b in model.named_buffers()}
    norms = []
    for _ in range(inner_steps):
        model.zero_grad()
        loss_fn(model(x), y).backward()
        with torch.no_grad():
            for d, p in zip(delta, chip, strict=True):
                if p.grad is not None:
                    d.add_(inner_lr * p.grad)
            groups = [[d] for d in delta] if per_tensor else [delta]
            for group in groups:
                norm = math.sqrt(sum(float(d.square().sum()) for d in group))
                if norm > epsilon:
                    for d in group:
                        d.mul_(epsilon / norm)
            for p, t, d in zip(chip, theta, delta, strict=True):
                p.copy_(t + d)  # the model now holds theta + Delta
        norms.append(math.sqrt(sum(float(d.square().sum()) for d in delta)))
    with torch.no_grad():
        for name, b in model.named_buffers():
            b.copy_(saved_buffers[name])  # the ascent forwards leave no trace in the statistics
    model.zero_grad()
    loss_fn(model(x), y).backward()  # the gradient at theta + Delta
    with torch.no_grad():
        for p, t in zip(chip, theta, strict=True):
            p.copy_(t)  # restore theta
    optimizer.step()
    return norms

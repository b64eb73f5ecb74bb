"""Plain, loop-by-loop re-implementation of Buechel et al. 2022's attack and robustness loss.

Written from the paper's formulas only (no library code), one parameter tensor at a time in
absolute coordinates: theta* <- theta* + zeta |theta| / n * sign(grad), then clipped into
[theta - zeta |theta|, theta + zeta |theta|].
"""

from __future__ import annotations

import math

import torch


def kl_rows(p_logits: torch.Tensor, q_logits: torch.Tensor) -> torch.Tensor:
    """mean_b sum_c p_bc (log p_bc - log q_bc) with p, q the softmax of each row, by loops."""
    total = 0.0
    for a, b in zip(p_logits.tolist(), q_logits.tolist(), strict=True):
        za = math.log(sum(math.exp(v) for v in a))
        zb = math.log(sum(math.exp(v) for v in b))
        total += sum(math.exp(u - za) * ((u - za) - (v - zb)) for u, v in zip(a, b, strict=True))
    return torch.tensor(total / len(p_logits), dtype=torch.float64)


def pga_absolute(theta, start, grad_fn, zeta: float, n_steps: int):
    """Projected sign ascent in absolute coordinates; grad_fn(list of tensors) -> list of grads."""
    star = [s.clone() for s in start]
    for _ in range(n_steps):
        grads = grad_fn(star)
        star = [
            torch.minimum(
                torch.maximum(s + zeta * t.abs() / n_steps * torch.sign(g), t - zeta * t.abs()),
                t + zeta * t.abs(),
            )
            for s, t, g in zip(star, theta, grads, strict=True)
        ]
    return star

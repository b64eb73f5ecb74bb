"""A plain, hand-written consistency loss (Hou et al. 2024) for a 2-hidden-layer ReLU MLP.

Written without hooks, functional_call or noise-model classes: the layers are matrix products,
the noise is w + eta * max|W| * N(0,1) drawn tensor by tensor in registration order from the
given generator (as `additive_gaussian` with scale='layer' does), and the compared features are
the two hidden pre-activations (the MLP's 'blocks'). The distances, the frozen teacher and the
CE on the clean branch are written out here as the formulas of the method's docstring.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor


def mlp_features(weights: list[Tensor], x: Tensor) -> tuple[list[Tensor], Tensor]:
    """([pre-activation of each hidden layer], logits) of Flatten -> (Linear, ReLU)* -> Linear."""
    h = x.flatten(1)
    features = []
    pairs = list(zip(weights[0::2], weights[1::2], strict=True))
    for i, (w, b) in enumerate(pairs):
        z = h @ w.T + b
        if i == len(pairs) - 1:
            return features, z
        features.append(z)
        h = torch.relu(z)
    raise ValueError("no layers")


def additive_layer_noise(weights: list[Tensor], eta: float, gen: torch.Generator) -> list[Tensor]:
    """w + eta * max|W| * N(0,1) per tensor, drawn in order from `gen`."""
    out = []
    for w in weights:
        draw = torch.randn(w.shape, generator=gen, dtype=w.dtype)
        out.append(w.detach() + eta * w.detach().abs().max() * draw)
    return out


def distance(a: Tensor, b: Tensor, kind: str) -> Tensor:
    """The feature distances of [B, D] features, written out per example and per column."""
    if kind == "mse":
        return ((a - b) ** 2).mean()
    if kind == "normalized_mse":  # ||a_i - b_i||^2 / ||b_i||^2, mean over examples
        pairs = zip(a, b, strict=True)
        ratios = [((ai - bi) ** 2).sum() / ((bi**2).sum() + 1e-12) for ai, bi in pairs]
        return torch.stack(ratios).mean()
    if kind == "channel_mse":  # column j divided by the biased variance of b's column j
        var = ((b - b.mean(0)) ** 2).mean(0)
        return (((a - b) ** 2) / (var + 1e-5)).mean()
    raise ValueError(kind)


def consistency_loss(
    weights: list[Tensor],
    x: Tensor,
    y: Tensor,
    eta: float,
    lam: float,
    gen: torch.Generator,
    detach_clean: bool = True,
    kind: str = "mse",
    teacher: list[Tensor] | None = None,
    ce_on: str = "noisy",
) -> tuple[Tensor, Tensor]:
    """(CE of the noisy (or clean) MLP, lam * mean over hidden layers of D(noisy, target)).

    The noisy weights are w + stopgrad(w_noisy - w), so gradients reach `weights`. The target
    features come from `teacher` (constant weights) when given, else from `weights` (detached
    when detach_clean).
    """
    drawn = additive_layer_noise(weights, eta, gen)
    noisy_w = [w + (n - w).detach() for w, n in zip(weights, drawn, strict=True)]
    noisy_f, noisy_logits = mlp_features(noisy_w, x)
    if teacher is not None:
        target_w = [t.detach() for t in teacher]
    else:
        target_w = [w.detach() for w in weights] if detach_clean else weights
    target_f, _ = mlp_features(target_w, x)
    distances = [distance(a, b, kind) for a, b in zip(noisy_f, target_f, strict=True)]
    ce_logits = noisy_logits if ce_on == "noisy" else mlp_features(weights, x)[1]
    return F.cross_entropy(ce_logits, y), lam * torch.stack(distances).mean()

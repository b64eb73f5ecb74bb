"""A plain, hand-written consistency loss (Hou et al. 2024) for a 2-hidden-layer ReLU MLP.

Written without hooks, functional_call or noise-model classes: the layers are matrix products,
the noise is w + eta * max|W| * N(0,1) drawn tensor by tensor in registration order from the
given generator (as `additive_gaussian` with scale='layer' does), and the compared features are
the two hidden pre-activations (the MLP's 'blocks').
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


def consistency_loss(
    weights: list[Tensor],
    x: Tensor,
    y: Tensor,
    eta: float,
    lam: float,
    gen: torch.Generator,
    detach_clean: bool = True,
) -> tuple[Tensor, Tensor]:
    """(CE of the noisy MLP, lam * mean over hidden layers of MSE(noisy, clean)).

    The noisy weights are w + stopgrad(w_noisy - w), so gradients reach `weights`.
    """
    drawn = additive_layer_noise(weights, eta, gen)
    noisy_w = [w + (n - w).detach() for w, n in zip(weights, drawn, strict=True)]
    noisy_f, noisy_logits = mlp_features(noisy_w, x)
    clean_w = [w.detach() for w in weights] if detach_clean else weights
    clean_f, _ = mlp_features(clean_w, x)
    distances = [((a - b) ** 2).mean() for a, b in zip(noisy_f, clean_f, strict=True)]
    return F.cross_entropy(noisy_logits, y), lam * torch.stack(distances).mean()

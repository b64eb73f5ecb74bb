"""Noise-free evaluation: logits and accuracy of a module as it is."""

from __future__ import annotations

from collections.abc import Mapping

import torch
from torch import Tensor, nn

from noiseproof.chip import forward
from noiseproof.inputs import Inputs, split
from noiseproof.modes import evaluating
from noiseproof.tasks import predict


@torch.no_grad()
def predictions(
    model: nn.Module, x: Inputs, batch_size: int, params: Mapping[str, Tensor] | None = None
) -> Tensor:
    """Predicted class per example, in eval mode (every submodule's mode restored after),
    through `params` when given (else the module as it is)."""
    with evaluating(model):
        return torch.cat([predict(forward(model, params, chunk)) for chunk in split(x, batch_size)])


def clean_accuracy(model: nn.Module, x: Inputs, y: Tensor, batch_size: int = 2000) -> float:
    """Fraction of (x, y) the module classifies correctly without noise."""
    return float((predictions(model, x, batch_size) == y).double().mean())

"""Noise-free evaluation: logits and accuracy of a module as it is."""

from __future__ import annotations

from collections.abc import Mapping

import torch
from torch import Tensor, nn

from noiseproof.chip import forward
from noiseproof.tasks import predict


@torch.no_grad()
def predictions(
    model: nn.Module, x: Tensor, batch_size: int, params: Mapping[str, Tensor] | None = None
) -> Tensor:
    """Predicted class per example, in eval mode, through `params` when given (else the module)."""
    modes = [(module, module.training) for module in model.modules()]  # each, e.g. frozen BN
    model.eval()
    try:
        out = []
        for chunk in x.split(batch_size):
            logits = model(chunk) if params is None else forward(model, params, chunk)
            out.append(predict(logits))
        return torch.cat(out)
    finally:
        for module, training in modes:  # parents before children: each subtree set, then fixed
            if module.training != training:
                module.train(training)


def clean_accuracy(model: nn.Module, x: Tensor, y: Tensor, batch_size: int = 2000) -> float:
    """Fraction of (x, y) the module classifies correctly without noise."""
    return float((predictions(model, x, batch_size) == y).double().mean())

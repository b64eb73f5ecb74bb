"""Noise-free evaluation: logits and accuracy of a module as it is."""

from __future__ import annotations

from collections.abc import Mapping

import torch
from torch import Tensor, nn

from noiseproof.chip import forward
from noiseproof.devices import model_device
from noiseproof.inputs import Inputs, split, to
from noiseproof.modes import evaluating
from noiseproof.precision import autocast
from noiseproof.tasks import predict


@torch.no_grad()
def predictions(
    model: nn.Module,
    x: Inputs,
    batch_size: int,
    params: Mapping[str, Tensor] | None = None,
    precision: str = "fp32",
) -> Tensor:
    """Predicted class per example, in eval mode (every submodule's mode restored after),
    through `params` when given (else the module as it is), on the model's device (`x` moved
    there once; a no-op when it is there already), under `precision` autocast."""
    device = model_device(model)
    x = to(x, device)
    with evaluating(model), autocast(device, precision):
        return torch.cat([predict(forward(model, params, chunk)) for chunk in split(x, batch_size)])


def clean_accuracy(
    model: nn.Module, x: Inputs, y: Tensor, batch_size: int = 2000, precision: str = "fp32"
) -> float:
    """Fraction of (x, y) the module classifies correctly without noise (on the model's
    device, under `precision` autocast; one number read back)."""
    predicted = predictions(model, x, batch_size, precision=precision)
    return float((predicted == y.to(predicted.device)).double().mean())

"""The [K, N] transfer correctness matrix built the slow, obvious way.

For every transfer: deep-copy the model, draw one chip from the noise model (same generator, same
order of draws as the library: one `sample` call per transfer over the clean on-chip tensors),
load the perturbed tensors into the copy's parameters, and classify each test example on its own.
"""

from __future__ import annotations

import copy

import torch
from torch import nn

from noiseproof.noise.base import NoiseModel


def predicted_class(logits: torch.Tensor) -> int:
    """argmax over classes, or 'logit > 0' for a single binary logit."""
    if logits.numel() == 1:
        return int(float(logits) > 0)
    return int(torch.argmax(logits))


@torch.no_grad()
def correctness_matrix(
    model: nn.Module,
    noise: NoiseModel,
    x: torch.Tensor,
    y: torch.Tensor,
    transfers: int,
    generator: torch.Generator,
    on_chip: list[str],
) -> torch.Tensor:
    """[transfers, N] bool: example n classified correctly on chip k."""
    clean = {name: param.detach().clone() for name, param in model.named_parameters()}
    clean = {name: clean[name] for name in on_chip}
    matrix = torch.zeros(transfers, len(y), dtype=torch.bool)
    for k in range(transfers):
        chip = copy.deepcopy(model)
        chip.eval()
        perturbed = noise.sample(clean, generator)
        own = dict(chip.named_parameters())
        for name, tensor in perturbed.items():
            own[name].copy_(tensor)
        for n in range(len(y)):
            logits = chip(x[n : n + 1])[0]
            matrix[k, n] = predicted_class(logits) == int(y[n])
    return matrix

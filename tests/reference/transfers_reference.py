"""The [K, N] transfer correctness matrix built the slow, obvious way.

For every transfer: deep-copy the model, take chip k's noise from the chip-indexed stream (its
definition written out again: one base seed drawn from the generator; chips in blocks of `block`,
block b drawn with a CPU generator seeded derive_seed(base, "chips", b), by vmap over `block`
copies of the clean tensors, or one plain `sample` call when block is 1), load the perturbed
tensors into the copy's parameters, and classify each test example on its own.
"""

from __future__ import annotations

import copy

import torch
from torch import nn

from noiseproof.noise.base import NoiseModel
from noiseproof.seeding import derive_seed


def predicted_class(logits: torch.Tensor) -> int:
    """argmax over classes, or 'logit > 0' for a single binary logit."""
    if logits.numel() == 1:
        return int(float(logits) > 0)
    return int(torch.argmax(logits))


@torch.no_grad()
def chip_noise(
    noise: NoiseModel, clean: dict[str, torch.Tensor], base: int, k: int, block: int
) -> dict[str, torch.Tensor]:
    """Chip k's perturbed tensors: entry k % block of block k // block."""
    gen = torch.Generator().manual_seed(derive_seed(base, "chips", k // block))
    if block == 1:
        return noise.sample(clean, gen)
    copies = {name: t.expand(block, *t.shape) for name, t in clean.items()}
    drawn = torch.func.vmap(lambda p: noise.sample(p, gen), randomness="different")(copies)
    return {name: t[k % block] for name, t in drawn.items()}


@torch.no_grad()
def correctness_matrix(
    model: nn.Module,
    noise: NoiseModel,
    x: torch.Tensor,
    y: torch.Tensor,
    transfers: int,
    generator: torch.Generator,
    on_chip: list[str],
    block: int,
    first_chip: int = 0,
) -> torch.Tensor:
    """[transfers, N] bool: example n classified correctly on chip first_chip + k."""
    clean = {name: param.detach().clone() for name, param in model.named_parameters()}
    clean = {name: clean[name] for name in on_chip}
    matrix = torch.zeros(transfers, len(y), dtype=torch.bool)
    base = int(torch.randint(0, 2**63 - 1, (1,), generator=generator))
    for k in range(transfers):
        chip = copy.deepcopy(model)
        chip.eval()
        perturbed = chip_noise(noise, clean, base, first_chip + k, block)
        own = dict(chip.named_parameters())
        for name, tensor in perturbed.items():
            own[name].copy_(tensor)
        for n in range(len(y)):
            logits = chip(x[n : n + 1])[0]
            matrix[k, n] = predicted_class(logits) == int(y[n])
    return matrix

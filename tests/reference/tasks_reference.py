"""Per-chip task metrics computed the slow, obvious way: one chip at a time (a deep copy with
the perturbed tensors loaded), one example at a time, the formulas written out by hand."""

from __future__ import annotations

import copy
import math

import torch
from torch import nn

from reference.transfers_reference import chip_noise


def perplexity_by_hand(logits: torch.Tensor, targets: torch.Tensor, ignore: int = -100) -> float:
    """exp(mean over counted tokens of -log softmax(logits)[target]), token by token."""
    total, tokens = 0.0, 0
    for row, target in zip(logits.reshape(-1, logits.shape[-1]), targets.reshape(-1), strict=True):
        if int(target) == ignore:
            continue
        log_z = math.log(sum(math.exp(float(v)) for v in row.double()))
        total += log_z - float(row[int(target)])
        tokens += 1
    return math.exp(total / tokens)


def r2_by_hand(predicted: list[float], targets: list[float]) -> float:
    """1 - sum (p - y)^2 / sum (y - mean y)^2."""
    mean = sum(targets) / len(targets)
    sse = sum((p - y) ** 2 for p, y in zip(predicted, targets, strict=True))
    sst = sum((y - mean) ** 2 for y in targets)
    return 1 - sse / sst


@torch.no_grad()
def chip_perplexities(
    model: nn.Module,
    noise,
    x: torch.Tensor,
    y: torch.Tensor,
    transfers: int,
    generator: torch.Generator,
    on_chip: list[str],
    block: int,
) -> list[float]:
    """Each chip's test perplexity, one chip and one sequence at a time."""
    clean = {name: p.detach().clone() for name, p in model.named_parameters() if name in on_chip}
    base = int(torch.randint(0, 2**63 - 1, (1,), generator=generator))
    out = []
    for k in range(transfers):
        chip = copy.deepcopy(model).eval()
        own = dict(chip.named_parameters())
        for name, tensor in chip_noise(noise, clean, base, k, block).items():
            own[name].copy_(tensor)
        logits = torch.cat([chip(x[n : n + 1]) for n in range(len(x))])
        out.append(perplexity_by_hand(logits, y))
    return out

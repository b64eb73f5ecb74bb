"""Statistics of a transfer run: accuracy distribution over chips and per-example reliability."""

from __future__ import annotations

import torch
from torch import Tensor

from noiseproof.evaluation.transfers import TransferResult


def accuracy_summary(accuracy: Tensor) -> dict[str, float]:
    """Mean, sample std (0 for one transfer), min, max and 5/50/95% quantiles over transfers.

    Quantiles use linear interpolation between order statistics (numpy's default method).
    """
    if not isinstance(accuracy, Tensor) or accuracy.dim() != 1 or not len(accuracy):
        raise TypeError("accuracy must be a non-empty 1-d tensor (one accuracy per transfer)")
    acc = accuracy.detach().double().cpu()  # K numbers, read once: the summary is host-side
    std = float(acc.std()) if len(acc) > 1 else 0.0
    q05, q50, q95 = torch.quantile(acc, torch.tensor([0.05, 0.5, 0.95], dtype=torch.float64))
    return {
        "mean": float(acc.mean()),
        "std": std,
        "min": float(acc.min()),
        "max": float(acc.max()),
        "q05": float(q05),
        "q50": float(q50),
        "q95": float(q95),
    }


def per_example_reliability(result: TransferResult) -> Tensor:
    """Each test example's fraction of transfers in which it is classified correctly ([N])."""
    return result.correct_counts.double() / result.transfers


def reliability(result: TransferResult, threshold: float = 0.95) -> dict[str, float]:
    """Share of test examples correct in >= `threshold` of transfers (Drolet et al. 2023)."""
    if not 0.0 < threshold <= 1.0:
        raise ValueError(f"reliability threshold must be in (0, 1], got {threshold}")
    needed = threshold * result.transfers - 1e-9  # integer counts: no rounding trap at 95/100
    share = (result.correct_counts >= needed).double().mean()
    return {"threshold": threshold, "share": float(share)}

"""Statistics of a transfer run: each metric's distribution over chips and per-unit reliability."""

from __future__ import annotations

import torch
from torch import Tensor

from noiseproof.evaluation.transfers import TransferResult
from noiseproof.tasks import Metric


def accuracy_summary(accuracy: Tensor) -> dict[str, float]:
    """Mean, sample std (0 for one transfer), min, max and 5/50/95% quantiles over transfers.

    Quantiles use linear interpolation between order statistics (numpy's default method).

    >>> import torch, noiseproof as nf
    >>> s = nf.accuracy_summary(torch.tensor([0.9, 0.8, 1.0]))
    >>> round(s["mean"], 3), round(s["std"], 3), round(s["min"], 3), round(s["q50"], 3)
    (0.9, 0.1, 0.8, 0.9)
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


def metric_summary(values: Tensor, metric: Metric) -> dict[str, float | bool]:
    """`accuracy_summary` of one metric's per-chip values, plus `worst` (the worst chip in the
    metric's own direction: lowest accuracy, highest perplexity) and `higher_is_better`."""
    return {
        **accuracy_summary(values),
        "worst": metric.worst(values.detach().double().cpu()),
        "higher_is_better": metric.higher_is_better,
    }


def metric_summaries(result: TransferResult) -> dict[str, dict[str, float | bool]]:
    """`metric_summary` of every metric of the run's task, keyed by the metric's name."""
    values = result.metrics
    return {m.name: metric_summary(values[m.name], m) for m in result.task.metrics}


def per_example_reliability(result: TransferResult) -> Tensor:
    """Each unit's (test example's, or counted token's) fraction of transfers with a hit
    (classified right, within tolerance, right next token): [units] float64."""
    counts = result.correct_counts if result.mask is None else result.correct_counts[result.mask]
    return counts.reshape(-1).double() / result.transfers


def reliability(result: TransferResult, threshold: float = 0.95) -> dict[str, float]:
    """Share of test units (examples, or tokens) with a hit in >= `threshold` of transfers
    (Drolet et al. 2023).

    >>> import torch, noiseproof as nf
    >>> model = torch.nn.Linear(2, 2)
    >>> _ = model.weight.data.copy_(torch.eye(2)), model.bias.data.zero_()
    >>> x, y = torch.tensor([[1.0, 0.0], [0.0, 1.0], [0.51, 0.49]]), torch.tensor([0, 1, 0])
    >>> noise = nf.create_noise({"name": "relative_gaussian", "zeta": 0.3})
    >>> chips = nf.run_transfers(model, noise, x, y, 200, nf.generator(0, "chips"))
    >>> nf.reliability(chips, threshold=0.95)["share"]  # the borderline example is not reliable
    0.6666666666666666
    """
    if not 0.0 < threshold <= 1.0:
        raise ValueError(f"reliability threshold must be in (0, 1], got {threshold}")
    counts = result.correct_counts if result.mask is None else result.correct_counts[result.mask]
    needed = threshold * result.transfers - 1e-9  # integer counts: no rounding trap at 95/100
    share = (counts >= needed).double().mean()
    return {"threshold": threshold, "share": float(share)}

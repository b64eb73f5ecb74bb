"""Uncertainty of Monte Carlo results: bootstrap intervals over chips and seeds, and paired
differences between methods.

Chip k of a run is the same draw for every method (common random numbers: its noise depends on
(seed, noise, level, k), never on the method), so two methods are compared chip by chip: the
difference d[s, k] = a[s, k] - b[s, k] cancels what the chips share, and its interval is far
narrower than two independent spreads would give.

Intervals are percentile bootstrap intervals (Efron & Tibshirani 1993, "An Introduction to the
Bootstrap", ch. 13), resampled hierarchically as the data were made: seeds with replacement,
then chips with replacement within each drawn seed (Davison & Hinkley 1997, sec. 3.8, the
two-stage bootstrap). With one seed it is the ordinary bootstrap over chips; seeds carry the
training's own variation into the interval.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

RESAMPLES = 2000
"""Bootstrap resamples per interval: the Monte Carlo error of a 95 % percentile endpoint is
then about 1 % of the interval's width (Efron & Tibshirani 1993, sec. 19.3)."""

STATISTICS = ("mean", "q05", "q50", "q95", "min", "max")
"""What an interval can be taken of (per resample, over all its chips)."""


@dataclass(frozen=True)
class Interval:
    """A statistic's value on the data and its bootstrap interval at `confidence`."""

    value: float
    low: float
    high: float
    confidence: float

    def contains(self, x: float) -> bool:
        """Whether x lies inside the interval (ends included)."""
        return self.low <= x <= self.high

    def as_dict(self) -> dict[str, float]:
        """{'value', 'low', 'high', 'confidence'} for a JSON record."""
        return {
            "value": self.value,
            "low": self.low,
            "high": self.high,
            "confidence": self.confidence,
        }


def _statistic(values: Tensor, name: str) -> Tensor:
    """The statistic over the last dimension (the pooled chips of a resample)."""
    if name == "mean":
        return values.mean(-1)
    if name == "min":
        return values.amin(-1)
    if name == "max":
        return values.amax(-1)
    q = {"q05": 0.05, "q50": 0.5, "q95": 0.95}[name]
    return torch.quantile(values, q, dim=-1)


def check_values(values: Tensor, name: str) -> Tensor:
    """`values` as a float64 [seeds, chips] tensor ([chips] is one seed); ValueError naming
    `name` unless it is a non-empty, finite 1-d or 2-d tensor."""
    if not isinstance(values, Tensor) or values.dim() not in (1, 2) or not values.numel():
        raise ValueError(f"{name} must be a non-empty [chips] or [seeds, chips] tensor")
    values = values.detach().double().cpu()
    if not bool(torch.isfinite(values).all()):
        raise ValueError(f"{name} holds non-finite values")
    return values if values.dim() == 2 else values.unsqueeze(0)


def resampled(values: Tensor, resamples: int, generator: torch.Generator) -> Tensor:
    """[resamples, seeds * chips] pooled values of the two-stage bootstrap: seeds drawn with
    replacement, then chips with replacement within each drawn seed."""
    seeds, chips = values.shape
    pick_seed = torch.randint(0, seeds, (resamples, seeds), generator=generator)
    pick_chip = torch.randint(0, chips, (resamples, seeds, chips), generator=generator)
    return values[pick_seed.unsqueeze(-1), pick_chip].reshape(resamples, seeds * chips)


def bootstrap_interval(
    values: Tensor,
    generator: torch.Generator,
    *,
    statistic: str = "mean",
    confidence: float = 0.95,
    resamples: int = RESAMPLES,
) -> Interval:
    """The percentile bootstrap interval of `statistic` (mean, a quantile, min, max) of a
    metric's per-chip values ([chips], or [seeds, chips]: chips pooled over seeds).

    Draws come from `generator` only. Worst-chip statistics (min, max) are extremes: their
    bootstrap interval is known to cover poorly (the resampled minimum never goes below the
    observed one); report it as the spread of the observed worst chip, not a guarantee.
    """
    values = check_values(values, "values")
    check_confidence(confidence)
    check_statistic(statistic)
    stats = _statistic(resampled(values, resamples, generator), statistic)
    value = float(_statistic(values.reshape(-1), statistic))
    return percentile_interval(value, stats, confidence)


def paired_difference(
    a: Tensor,
    b: Tensor,
    generator: torch.Generator,
    *,
    statistic: str = "mean",
    confidence: float = 0.95,
    resamples: int = RESAMPLES,
) -> Interval:
    """The interval of statistic(a) - statistic(b) for two methods measured on the same chips
    (a[s, k] and b[s, k]: seed s, chip k), both resampled with the same seed and chip picks, so
    what the chips share cancels. ValueError unless the shapes agree."""
    a, b = check_values(a, "a"), check_values(b, "b")
    if a.shape != b.shape:
        raise ValueError(
            f"a and b must hold the same seeds and chips, got {list(a.shape)} and {list(b.shape)}"
        )
    check_confidence(confidence)
    check_statistic(statistic)
    state = generator.get_state()
    stats_a = _statistic(resampled(a, resamples, generator), statistic)
    generator.set_state(state)  # the same picks for b: the pairing survives the resampling
    stats_b = _statistic(resampled(b, resamples, generator), statistic)
    value = float(_statistic(a.reshape(-1), statistic) - _statistic(b.reshape(-1), statistic))
    return percentile_interval(value, stats_a - stats_b, confidence)


def percentile_interval(value: float, resampled_stats: Tensor, confidence: float) -> Interval:
    """The interval between the (1 - confidence)/2 and (1 + confidence)/2 quantiles of the
    resampled statistics (the percentile method)."""
    tail = (1 - confidence) / 2
    quantiles = torch.tensor([tail, 1 - tail], dtype=torch.float64)
    low, high = torch.quantile(resampled_stats, quantiles)
    return Interval(value, float(low), float(high), confidence)


def check_statistic(statistic: str) -> str:
    """`statistic` if it is one of STATISTICS; ValueError naming it otherwise."""
    if statistic not in STATISTICS:
        raise ValueError(f"statistic must be one of {', '.join(STATISTICS)}, got {statistic!r}")
    return statistic


def check_confidence(confidence: float) -> float:
    """`confidence` if it is a number in (0, 1); ValueError naming it otherwise."""
    if isinstance(confidence, bool) or not isinstance(confidence, int | float):
        raise ValueError(f"confidence must be a number in (0, 1), got {confidence!r}")
    if not 0 < confidence < 1:
        raise ValueError(f"confidence must be in (0, 1), got {confidence}")
    return float(confidence)

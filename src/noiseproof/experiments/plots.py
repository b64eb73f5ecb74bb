"""Plots of a compare run: accuracy vs noise level with min-max bands; reliability per method."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from noiseproof.experiments.results import grouped, mean_over_seeds
from noiseproof.plotting import pyplot, save_figure

plt = pyplot()


def accuracy_plot(records: Sequence[dict[str, Any]], noise: str, path: Path) -> Path:
    """Mean test accuracy (%) vs level per method, shaded between the worst and best transfer."""
    figure, axes = plt.subplots(figsize=(6.4, 4.2))
    for method, by_level in grouped(records)[noise].items():
        levels = sorted(by_level)
        mean = [100 * mean_over_seeds(by_level[lv], "accuracy", "mean") for lv in levels]
        low = [100 * min(r["accuracy"]["min"] for r in by_level[lv]) for lv in levels]
        high = [100 * max(r["accuracy"]["max"] for r in by_level[lv]) for lv in levels]
        (line,) = axes.plot(levels, mean, marker="o", label=method)
        axes.fill_between(levels, low, high, color=line.get_color(), alpha=0.2)
    axes.set_xlabel(f"{noise} level")
    axes.set_ylabel("test accuracy (%)")
    axes.set_title(f"Accuracy under {noise} (mean; band = min..max over transfers)")
    axes.grid(alpha=0.3)
    axes.legend()
    return save_figure(figure, path)


def reliability_plot(records: Sequence[dict[str, Any]], noise: str, path: Path) -> Path:
    """Share of test examples correct in >= threshold of transfers, vs level, per method."""
    figure, axes = plt.subplots(figsize=(6.4, 4.2))
    threshold = records[0]["reliability"]["threshold"]
    for method, by_level in grouped(records)[noise].items():
        levels = sorted(by_level)
        share = [100 * mean_over_seeds(by_level[lv], "reliability", "share") for lv in levels]
        axes.plot(levels, share, marker="s", label=method)
    axes.set_xlabel(f"{noise} level")
    axes.set_ylabel(f"examples right in >= {threshold:.0%} of transfers (%)")
    axes.set_title(f"Per-example reliability under {noise}")
    axes.grid(alpha=0.3)
    axes.legend()
    return save_figure(figure, path)


def reliability_histogram_plot(records: Sequence[dict[str, Any]], noise: str, path: Path) -> Path:
    """Per-example reliability histogram (Drolet et al. 2023): share of test examples (%) per bin
    of 'fraction of transfers classified correctly', one panel per level, summed over seeds."""
    by_method = grouped(records)[noise]
    levels = sorted({lv for by_level in by_method.values() for lv in by_level})
    figure, axes = plt.subplots(
        1, len(levels), figsize=(4.2 * len(levels) + 1.0, 3.6), squeeze=False, sharey=True
    )
    threshold = records[0]["reliability"]["threshold"]
    for axis, level in zip(axes[0], levels, strict=True):
        for method, by_level in by_method.items():
            runs = by_level.get(level, [])
            if not runs:
                continue
            hists = [r["per_example_reliability_histogram"] for r in runs]
            counts = [sum(column) for column in zip(*hists, strict=True)]
            total = sum(counts) or 1
            edges = [i / len(counts) for i in range(len(counts) + 1)]
            axis.stairs([100 * c / total for c in counts], edges, label=method, linewidth=1.5)
        axis.axvline(threshold, color="grey", linestyle="--", linewidth=1)
        axis.set_title(f"{noise} = {level:g}")
        axis.set_xlabel("fraction of transfers correct")
        axis.grid(alpha=0.3)
    axes[0][0].set_ylabel("test examples (%)")
    axes[0][-1].legend()
    figure.tight_layout()
    return save_figure(figure, path)

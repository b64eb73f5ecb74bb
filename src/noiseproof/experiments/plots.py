"""Plots of a compare run: the task's primary metric (accuracy, MSE, perplexity...) vs noise
level with bands over the transfers; reliability per method.

A noise model whose sweep level is a time (`level_field == "t_inference"`, e.g. `pcm`) is
plotted on a log time axis with ticks 1 s, 1 h, 1 day, 1 month, 1 year; a level of 0 (the chip
as programmed) has no place on a log axis and is drawn at the left edge, one decade below the
smallest positive level (at most 0.1 s), with the tick label "0".
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from noiseproof.experiments.results import (
    grouped,
    is_percent,
    mean_over_seeds,
    metric_label,
    metric_stats,
    primary_metric,
)
from noiseproof.noise.base import noise_models
from noiseproof.plotting import pyplot, save_figure

plt = pyplot()

TIME_TICKS = (
    (1.0, "1 s"),
    (3600.0, "1 h"),
    (86400.0, "1 day"),
    (2592000.0, "1 month"),
    (31536000.0, "1 year"),
)
"""Named ticks of a time axis (seconds); a month is 30 days, a year 365 days."""

PANELS_PER_ROW = 3
"""Panels side by side in a figure of one panel per level; more wrap onto further rows."""


def is_time_sweep(records: Sequence[dict[str, Any]], noise: str) -> bool:
    """True when the noise model labelled `noise` sweeps a time (level field 't_inference')."""
    spec = next((r.get("config", {}).get("noise") for r in records if r["noise"] == noise), None)
    if not isinstance(spec, dict) or "name" not in spec:
        return False
    return noise_models.get(spec["name"]).level_field == "t_inference"


def zero_position(levels: Sequence[float]) -> float:
    """Where level 0 sits on a log time axis: a decade below the smallest positive level."""
    return min([lv for lv in levels if lv > 0] + [1.0]) / 10


def positions(levels: Sequence[float], time_axis: bool) -> list[float]:
    """x of each level: the level itself, except 0 on a time axis (`zero_position`)."""
    if not time_axis:
        return list(levels)
    return [lv if lv > 0 else zero_position(levels) for lv in levels]


def placed_levels(records: Sequence[dict[str, Any]], noise: str) -> tuple[dict[float, float], bool]:
    """({level: x position} over every method's levels of `noise`, whether it is a time axis)."""
    every = sorted({lv for by_level in grouped(records)[noise].values() for lv in by_level})
    time_axis = is_time_sweep(records, noise)
    return dict(zip(every, positions(every, time_axis), strict=True)), time_axis


def level_axis(axes: Any, noise: str, levels: Sequence[float], time_axis: bool) -> None:
    """Label the x axis: '<noise> level', or a log time axis with named ticks (module doc)."""
    if not time_axis:
        axes.set_xlabel(f"{noise} level")
        return
    axes.set_xscale("log")
    low, high = min(positions(levels, True)), max(levels)
    ticks = [(x, label) for x, label in TIME_TICKS if low <= x <= high]
    if 0 in levels:
        ticks.insert(0, (zero_position(levels), "0"))
    if ticks:  # else matplotlib's own log ticks (levels between two named times)
        axes.set_xticks([x for x, _ in ticks], [label for _, label in ticks])
        axes.minorticks_off()
    axes.set_xlabel(f"{noise}: time since programming (t_inference, log scale)")


def accuracy_plot(records: Sequence[dict[str, Any]], noise: str, path: Path) -> Path:
    """The primary metric's mean (accuracy in %) vs level per method, shaded between the worst
    and best transfer; perplexity on a log axis."""
    figure, axes = plt.subplots(figsize=(6.4, 4.2))
    place, time_axis = placed_levels(records, noise)
    name = primary_metric(next(r for r in records if r["noise"] == noise))
    scale = 100 if is_percent(name) else 1
    for method, by_level in grouped(records)[noise].items():
        levels = sorted(by_level)
        mean = [scale * mean_over_seeds(by_level[lv], name, "mean") for lv in levels]
        low = [scale * min(metric_stats(r, name)["min"] for r in by_level[lv]) for lv in levels]
        high = [scale * max(metric_stats(r, name)["max"] for r in by_level[lv]) for lv in levels]
        x = [place[lv] for lv in levels]
        (line,) = axes.plot(x, mean, marker="o", label=method)
        axes.fill_between(x, low, high, color=line.get_color(), alpha=0.2)
    level_axis(axes, noise, list(place), time_axis)
    if name == "perplexity":
        axes.set_yscale("log")
    shown = name.replace("_", " ")
    axes.set_ylabel(f"test {metric_label(name)}")
    axes.set_title(f"{shown.capitalize()} under {noise} (mean; band = min..max over transfers)")
    axes.grid(alpha=0.3)
    axes.legend()
    return save_figure(figure, path)


def is_token_task(records: Sequence[dict[str, Any]]) -> bool:
    """Whether the records' reliability counts tokens (a sequence task), not examples."""
    name = records[0].get("task", {}).get("name", "") if records else ""
    return name in ("language_model", "token_classification")


def reliability_plot(records: Sequence[dict[str, Any]], noise: str, path: Path) -> Path:
    """Share of test examples correct in >= threshold of transfers, vs level, per method."""
    figure, axes = plt.subplots(figsize=(6.4, 4.2))
    threshold = records[0]["reliability"]["threshold"]
    place, time_axis = placed_levels(records, noise)
    for method, by_level in grouped(records)[noise].items():
        levels = sorted(by_level)
        share = [100 * mean_over_seeds(by_level[lv], "reliability", "share") for lv in levels]
        axes.plot([place[lv] for lv in levels], share, marker="s", label=method)
    level_axis(axes, noise, list(place), time_axis)
    units = "tokens" if is_token_task(records) else "examples"
    axes.set_ylabel(f"{units} right in >= {threshold:.0%} of transfers (%)")
    axes.set_title(f"Per-example reliability under {noise}")
    axes.grid(alpha=0.3)
    axes.legend()
    return save_figure(figure, path)


def reliability_histogram_plot(records: Sequence[dict[str, Any]], noise: str, path: Path) -> Path:
    """Per-example reliability histogram (Drolet et al. 2023): share of test examples (%) per bin
    of 'fraction of transfers classified correctly', one panel per level (PANELS_PER_ROW to a
    row, so each stays legible at a report's width), summed over seeds."""
    by_method = grouped(records)[noise]
    levels = sorted({lv for by_level in by_method.values() for lv in by_level})
    columns = min(len(levels), PANELS_PER_ROW)
    rows = -(-len(levels) // columns)
    figure, axes = plt.subplots(
        rows, columns, figsize=(3.6 * columns + 0.8, 3.0 * rows), squeeze=False, sharey=True
    )
    threshold = records[0]["reliability"]["threshold"]
    panels = [axis for row in axes for axis in row]
    for axis in panels[len(levels) :]:
        axis.set_visible(False)
    for axis, level in zip(panels, levels, strict=False):
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
        axis.set_xlabel("fraction of transfers right")
        axis.grid(alpha=0.3)
    for row in axes:
        row[0].set_ylabel(f"test {'tokens' if is_token_task(records) else 'examples'} (%)")
    panels[len(levels) - 1].legend()
    figure.tight_layout()
    return save_figure(figure, path)

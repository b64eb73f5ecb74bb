"""The Pareto plot of a compare run: per noise level, each method's robust metric (the mean over
chips, and the worst chip) against its training cost (FLOPs) and against its clean metric, the
methods no other beats in both (noiseproof.experiments.decision.pareto) drawn filled.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from noiseproof.experiments.decision import pareto
from noiseproof.experiments.results import is_percent, metric_label
from noiseproof.plotting import pyplot, save_figure

plt = pyplot()

PANELS = (
    ("robust_vs_train_cost", "value", "flops", "mean over chips vs training cost"),
    ("worst_vs_train_cost", "worst", "flops", "worst chip vs training cost"),
    ("robust_vs_clean", "value", "clean", "mean over chips vs clean"),
    ("worst_vs_clean", "worst", "clean", "worst chip vs clean"),
)
"""(pareto key, robust value of a method row, x of the panel, title) of each column."""


def pareto_plot(comparisons_: Sequence[dict[str, Any]], noise: str, path: Path) -> Path:
    """One row per level of `noise`, one column per PANELS entry: a point per method, filled
    when it is on that panel's Pareto front (dashed line through the front), hollow when
    another method is at least as good in both coordinates and better in one."""
    items = [c for c in comparisons_ if c["noise"] == noise]
    fronts = pareto(items)
    panels = [p for p in PANELS if all(p[0] in f for f in fronts)]
    methods = list(dict.fromkeys(r["method"] for c in items for r in c["methods"]))
    colour = {m: f"C{i % 10}" for i, m in enumerate(methods)}
    width = 3.1 * len(panels) + 0.6
    columns = max(1, min(len(methods) + 1, int(width / 2.0)))  # legend entries to a row
    legend = 0.35 * -(-(len(methods) + 1) // columns)  # inches above the panels
    height = 2.3 * len(items) + legend + 0.6
    figure, axes = plt.subplots(  # x is the same at every level: clean metric, training cost
        len(items), len(panels), figsize=(width, height), squeeze=False, sharex="col"
    )
    for row, item, front in zip(axes, items, fronts, strict=True):
        scale = 100 if is_percent(item["metric"]) else 1
        for axis, (key, robust, x_of, _) in zip(row, panels, strict=True):
            points = []
            for method_row in item["methods"]:
                x = method_row["cost"]["flops"] if x_of == "flops" else scale * method_row["clean"]
                points.append((method_row["method"], x, scale * method_row[robust]))
            for method, x, y in points:
                on = method in front[key]
                axis.scatter(
                    [x],
                    [y],
                    s=60,
                    color=colour[method],
                    facecolors=colour[method] if on else "none",
                    linewidths=1.5,
                    zorder=3,
                )
            line = sorted((x, y) for m, x, y in points if m in front[key])
            axis.plot([x for x, _ in line], [y for _, y in line], "k--", linewidth=0.8)
            flops = [x for _, x, _ in points] if x_of == "flops" else []
            if flops and min(flops) > 0 and max(flops) > 10 * min(flops):
                axis.set_xscale("log")
            axis.grid(alpha=0.3)
        row[0].set_ylabel(f"{noise} = {item['level']:g}\n{metric_label(item['metric'])}")
    for axis, (_, _, _, title) in zip(axes[0], panels, strict=True):
        axis.set_title(title, fontsize=10)
    for axis, (_, _, x_of, _) in zip(axes[-1], panels, strict=True):
        axis.set_xlabel(
            "training FLOPs" if x_of == "flops" else f"clean {metric_label(items[0]['metric'])}"
        )
    handles = [
        plt.Line2D([], [], marker="o", linestyle="", color=colour[m], label=m) for m in methods
    ]
    handles.append(plt.Line2D([], [], marker="o", linestyle="", color="k", markerfacecolor="none"))
    handles[-1].set_label("hollow: dominated")
    figure.legend(handles=handles, loc="upper center", ncol=columns, frameon=False)
    figure.subplots_adjust(  # fixed margins in inches: tight_layout's extra draws cost seconds
        left=1.0 / width,
        right=1 - 0.15 / width,
        bottom=0.6 / height,
        top=1 - (legend + 0.35) / height,
        wspace=0.35,
        hspace=0.15,
    )
    return save_figure(figure, path)

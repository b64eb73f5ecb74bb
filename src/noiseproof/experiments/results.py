"""Result records: JSON per job, a flat CSV row per job, and the console summary table.

A record names its task and carries each of the task's metrics per chip (`metrics`: mean, std,
min, max, quantiles, `worst` in the metric's own direction, `higher_is_better`); the first is
the primary metric, the one tables and plots show. A classifier's record also keeps `accuracy`
and `clean_accuracy` (records written before tasks existed have only those).
"""

from __future__ import annotations

import csv
import io
import math
from collections.abc import Sequence
from typing import Any

STAT_KEYS = ("mean", "std", "min", "q05", "q50", "q95", "max")
CSV_COLUMNS = (
    "method",
    "noise",
    "level",
    "seed",
    "transfers",
    "clean_accuracy",
    *(f"accuracy_{k}" for k in STAT_KEYS),
    "reliability_threshold",
    "reliability_share",
    "best_epoch",
    "best_val_accuracy",
    "train_seconds",
    "eval_seconds",
    "task",
    "metric",
    "higher_is_better",
    "clean",
    *(f"metric_{k}" for k in (*STAT_KEYS, "worst")),
    "best_val",
)
"""A classifier fills the accuracy_* columns; every task fills `metric` (its primary metric's
name) and the metric_* columns with that metric's statistics."""


def primary_metric(record: dict[str, Any]) -> str:
    """The name of the record's primary metric (a record from before tasks: accuracy)."""
    return next(iter(record["metrics"])) if "metrics" in record else "accuracy"


def metric_stats(record: dict[str, Any], name: str) -> dict[str, Any]:
    """The record's statistics over chips of metric `name`."""
    return record["metrics"][name] if "metrics" in record else record[name]


def clean_value(record: dict[str, Any], name: str) -> float:
    """The noise-free value of metric `name` of the record's model."""
    return record["clean"][name] if "clean" in record else record[f"clean_{name}"]


def is_percent(name: str) -> bool:
    """Whether a metric reads in % (accuracies)."""
    return "accuracy" in name


def show(value: float | None, name: str, like: float | None = None) -> str:
    """A value of metric `name` as tables show it: accuracies in % with two decimals, others
    with the decimals that give `like` (default: the value itself) four significant digits
    (perplexity 115.8, MSE 0.3512), so a cell's mean, std and worst align. A missing value
    (null in a strict-JSON record) shows as 'n/a'."""
    if value is None:
        return "n/a"
    if is_percent(name):
        return f"{100 * value:.2f}"
    reference = abs(like if like is not None else value)
    digits = (
        3 - math.floor(math.log10(reference)) if reference > 0 and math.isfinite(reference) else 3
    )
    return f"{value:.{min(max(digits, 0), 8)}f}"


def metric_label(name: str) -> str:
    """An axis or caption label: 'accuracy (%)', 'perplexity', 'r2'."""
    return f"{name.replace('_', ' ')}{' (%)' if is_percent(name) else ''}"


def flat_row(record: dict[str, Any]) -> dict[str, Any]:
    """One CSV row (the columns in CSV_COLUMNS) from a job record."""
    name = primary_metric(record)
    stats = metric_stats(record, name)
    training = record["training"]
    classifier = "accuracy" in record
    return {
        "method": record["method"],
        "noise": record["noise"],
        "level": record["level"],
        "seed": record["seed"],
        "transfers": record["transfers"],
        "clean_accuracy": record.get("clean_accuracy", ""),
        **{f"accuracy_{k}": record["accuracy"][k] if classifier else "" for k in STAT_KEYS},
        "reliability_threshold": record["reliability"]["threshold"],
        "reliability_share": record["reliability"]["share"],
        "best_epoch": training["best_epoch"],
        "best_val_accuracy": training.get("best_val_accuracy", ""),
        "train_seconds": training["train_seconds"],
        "eval_seconds": record["seconds"],
        "task": record.get("task", {}).get("name", "classification"),
        "metric": name,
        "higher_is_better": stats.get("higher_is_better", True),
        "clean": clean_value(record, name),
        **{f"metric_{k}": stats.get(k, stats["min"]) for k in (*STAT_KEYS, "worst")},
        "best_val": training.get("best_val", training.get("best_val_accuracy", "")),
    }


def to_csv(records: Sequence[dict[str, Any]]) -> str:
    """All records as CSV text with a header row, loadable with pandas.read_csv."""
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=CSV_COLUMNS, lineterminator="\n")
    writer.writeheader()
    for record in records:
        writer.writerow(flat_row(record))
    return buffer.getvalue()


def grouped(records: Sequence[dict[str, Any]]) -> dict[str, dict[str, dict[float, list[dict]]]]:
    """records -> {noise: {method: {level: [records over seeds]}}}, in first-seen order."""
    table: dict[str, dict[str, dict[float, list[dict]]]] = {}
    for record in records:
        by_method = table.setdefault(record["noise"], {})
        by_level = by_method.setdefault(record["method"], {})
        by_level.setdefault(record["level"], []).append(record)
    return table


def mean_over_seeds(records: Sequence[dict[str, Any]], key: str, stat: str) -> float:
    """Mean over seeds of record[key][stat] (key: 'reliability', or a metric's name); a null
    value (not a finite number when it was measured) counts as NaN."""
    if key == "reliability":
        values = [r[key][stat] for r in records]
    else:
        values = [metric_stats(r, key).get(stat, metric_stats(r, key)["min"]) for r in records]
    return sum(math.nan if v is None else v for v in values) / len(values)


def summary_rows(records: Sequence[dict[str, Any]]) -> list[tuple[str, list[str], list[list[str]]]]:
    """Per noise model: (noise, header, rows) with 'mean ± std (worst)' of the primary metric
    per level (accuracy in %; worst: the worst chip, for accuracy its minimum).

    With several seeds each cell averages the per-seed statistics.
    """
    tables = []
    for noise, by_method in grouped(records).items():
        levels = sorted({level for by_level in by_method.values() for level in by_level})
        header = ["method", "clean", *[f"{noise}={level:g}" for level in levels]]
        rows = []
        for method, by_level in by_method.items():
            any_level = next(iter(by_level.values()))
            name = primary_metric(any_level[0])
            clean = sum(clean_value(r, name) for r in any_level) / len(any_level)
            cells = [method, show(clean, name)]
            for level in levels:
                runs = by_level.get(level)
                if not runs:
                    cells.append("-")
                    continue
                like = mean_over_seeds(runs, name, "mean")
                mean, std, worst = (
                    show(mean_over_seeds(runs, name, s), name, like)
                    for s in ("mean", "std", "worst")
                )
                cells.append(f"{mean} ± {std} ({worst})")
            rows.append(cells)
        tables.append((noise, header, rows))
    return tables


def text_table(header: list[str], rows: list[list[str]]) -> str:
    """A fixed-width plain-text table."""
    widths = [max(len(str(row[i])) for row in [header, *rows]) for i in range(len(header))]
    lines = [
        "  ".join(str(c).ljust(w) for c, w in zip(row, widths, strict=True))
        for row in [header, *rows]
    ]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def markdown_table(header: list[str], rows: list[list[str]]) -> str:
    """A GitHub-flavoured markdown table."""
    out = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    out += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(out)


def table_caption(name: str, noise: str, transfers: int) -> str:
    """The line above a summary table: what its cells hold (`summary_rows`)."""
    if name == "accuracy":
        return f"accuracy under {noise} (%: mean ± std (min) over {transfers} transfers)"
    unit = "%: " if is_percent(name) else ""
    shown = name.replace("_", " ")
    return f"{shown} under {noise} ({unit}mean ± std (worst chip) over {transfers} transfers)"


def cells_note(records: Sequence[dict[str, Any]], transfers: int, threshold: float) -> str:
    """The report's note on what table cells and reliability mean for the records' task."""
    name = primary_metric(records[0]) if records else "accuracy"
    task = records[0].get("task", {}).get("name", "classification") if records else ""
    if name == "accuracy" and task == "classification":
        cells = (
            f"Accuracy cells: mean ± std (min) over {transfers} simulated transfers per level, "
            "in %."
        )
        right = "test examples classified correctly"
    else:
        unit = ", in %" if is_percent(name) else ""
        cells = (
            f"Cells: test {name.replace('_', ' ')}, mean ± std (worst chip) over "
            f"{transfers} simulated transfers per level{unit}."
        )
        units = "tokens" if task in ("language_model", "token_classification") else "examples"
        right = f"test {units} right" + (
            " (error within tolerance)" if task == "regression" else ""
        )
    return f"{cells}\nReliability: share of {right} in >= {100 * threshold:g}% of transfers."

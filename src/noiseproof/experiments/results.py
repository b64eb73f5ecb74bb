"""Result records: JSON per job, a flat CSV row per job, and the console summary table."""

from __future__ import annotations

import csv
import io
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
)


def flat_row(record: dict[str, Any]) -> dict[str, Any]:
    """One CSV row (the columns in CSV_COLUMNS) from a job record."""
    return {
        "method": record["method"],
        "noise": record["noise"],
        "level": record["level"],
        "seed": record["seed"],
        "transfers": record["transfers"],
        "clean_accuracy": record["clean_accuracy"],
        **{f"accuracy_{k}": record["accuracy"][k] for k in STAT_KEYS},
        "reliability_threshold": record["reliability"]["threshold"],
        "reliability_share": record["reliability"]["share"],
        "best_epoch": record["training"]["best_epoch"],
        "best_val_accuracy": record["training"]["best_val_accuracy"],
        "train_seconds": record["training"]["train_seconds"],
        "eval_seconds": record["seconds"],
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
    """Mean over seeds of record[key][stat]."""
    return sum(r[key][stat] for r in records) / len(records)


def summary_rows(records: Sequence[dict[str, Any]]) -> list[tuple[str, list[str], list[list[str]]]]:
    """Per noise model: (noise, header, rows) with 'mean ± std (min)' accuracy in % per level.

    With several seeds each cell averages the per-seed statistics.
    """
    tables = []
    for noise, by_method in grouped(records).items():
        levels = sorted({level for by_level in by_method.values() for level in by_level})
        header = ["method", "clean", *[f"{noise}={level:g}" for level in levels]]
        rows = []
        for method, by_level in by_method.items():
            any_level = next(iter(by_level.values()))
            clean = sum(r["clean_accuracy"] for r in any_level) / len(any_level)
            cells = [method, f"{100 * clean:.2f}"]
            for level in levels:
                runs = by_level.get(level)
                if not runs:
                    cells.append("-")
                    continue
                mean, std, low = (
                    100 * mean_over_seeds(runs, "accuracy", s) for s in ("mean", "std", "min")
                )
                cells.append(f"{mean:.2f} ± {std:.2f} ({low:.2f})")
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

"""Tables of a compare report laid out to be read: a grid wider than it is long turned on its
side, cells of the best method and of those indistinguishable from it marked, and the Pareto
fronts per level (noiseproof.experiments.decision).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

MAX_COLUMNS = 6
"""A table with more columns than this is transposed when that leaves it fewer columns."""

BEST, TIED = "★", "≈"
"""Marks appended to a metric cell: the best mean at that level; indistinguishable from it."""


def fitted(
    header: list[str], rows: list[list[str]], corner: str, prefix: str = ""
) -> tuple[list[str], list[list[str]]]:
    """The table as given, or transposed when it has more than MAX_COLUMNS columns and fewer
    rows than columns: a row per former column, named by its header cell less `prefix`, the
    first column's cells as the header after `corner`."""
    if len(header) <= MAX_COLUMNS or len(rows) + 1 >= len(header):
        return header, rows
    columns = [[row[i] for row in rows] for i in range(len(header))]
    return [corner, *columns[0]], [
        [header[i].removeprefix(prefix), *columns[i]] for i in range(1, len(header))
    ]


def marked(
    header: list[str],
    rows: list[list[str]],
    comparisons_: Sequence[dict[str, Any]],
    noise: str,
) -> list[list[str]]:
    """Rows of a summary table (a row per method, a column `<noise>=<level>` per level) with
    BEST after the best method's cell at each level and TIED after the cells of the methods
    whose chip-paired difference from the best has an interval holding 0."""
    column = {f"{noise}={c['level']:g}": c for c in comparisons_ if c["noise"] == noise}
    out = []
    for row in rows:
        cells = list(row)
        for i, name in enumerate(header):
            item = column.get(name)
            if item is None:
                continue
            own = next((r for r in item["methods"] if r["method"] == row[0]), None)
            if own is None:
                continue
            if own["method"] == item["best"]:
                cells[i] += f" {BEST}"
            elif own.get("indistinguishable"):
                cells[i] += f" {TIED}"
        out.append(cells)
    return out


def pareto_rows(fronts: Sequence[dict[str, Any]], noise: str) -> tuple[list[str], list[list[str]]]:
    """Per level of `noise`, the methods on each Pareto front (decision.pareto): the mean over
    chips and the worst chip, each against training FLOPs and against the clean metric."""
    keys = (
        ("robust_vs_train_cost", "mean vs training cost"),
        ("worst_vs_train_cost", "worst chip vs training cost"),
        ("robust_vs_clean", "mean vs clean"),
        ("worst_vs_clean", "worst chip vs clean"),
    )
    own = [f for f in fronts if f["noise"] == noise]
    shown = [(key, title) for key, title in keys if all(key in f for f in own)]
    header = ["level", *(title for _, title in shown)]
    rows = [[f"{f['level']:g}", *(", ".join(f[key]) for key, _ in shown)] for f in own]
    return header, rows

"""The summary a compare report opens with: per noise model and level, the best method with
the interval of its mean, those indistinguishable from it and what `noiseproof recommend`
names (noiseproof.experiments.decision); and what each method's training cost.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from noiseproof.experiments.decision import choose, verdict_rows


def decision_rows(
    records: Sequence[dict[str, Any]], comparisons_: Sequence[dict[str, Any]], noise: str
) -> tuple[list[str], list[list[str]]]:
    """`verdict_rows` of one noise model with a last column: the method `recommend` names at
    that level (defaults: by the mean, the cheapest indistinguishable from the best), with why,
    decided from the run's comparisons (`choose`: no second bootstrap, at the run's confidence)."""
    header, rows = verdict_rows(comparisons_, noise)
    items = [c for c in comparisons_ if c["noise"] == noise]
    for row, item in zip(rows, items, strict=True):
        chips = next(
            r["transfers"] for r in records if r["noise"] == noise and r["level"] == item["level"]
        )
        decided = choose(item, noise, item["level"], chips)
        said = next((line for line in decided["lines"] if line.startswith("recommend: ")), "")
        row.append(said.removeprefix("recommend: ") or "none")
    return [*header, "recommend"], rows


def cost_rows(trainings: Sequence[dict[str, Any]]) -> tuple[list[str], list[list[str]]]:
    """Per method, the mean over its seeds of what training cost (the training records'
    `cost`, noiseproof.training.cost): epochs, optimiser steps, examples, model forwards,
    FLOPs (torch's counter) and wall seconds."""
    header = [
        "method",
        "seeds",
        "epochs",
        "steps",
        "examples",
        "forwards",
        "training FLOPs",
        "training time (s)",
    ]
    rows = []
    for method in dict.fromkeys(t["method"] for t in trainings):
        own = [t for t in trainings if t["method"] == method]
        costs = [t.get("cost", {}) for t in own]
        epochs = sum(len(t["history"]) for t in own) / len(own)
        rows.append(
            [
                method,
                str(len(own)),
                f"{epochs:g}",
                *(mean_cost(costs, key, ".0f") for key in ("steps", "examples", "forwards")),
                mean_cost(costs, "flops", ".3g"),
                mean_cost(costs, "seconds", ".1f"),
            ]
        )
    return header, rows


def mean_cost(costs: Sequence[dict[str, Any]], key: str, spec: str) -> str:
    """The mean of one cost entry over trainings, formatted; 'n/a' where one lacks it."""
    values = [c.get(key) for c in costs]
    numbers = [float(v) for v in values if v is not None]
    if len(numbers) < len(values):
        return "n/a"
    return format(sum(numbers) / len(numbers), spec)

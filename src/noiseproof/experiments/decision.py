"""Which method to deploy: each method's interval at every noise level, its chip-paired
difference from the best, the Pareto front of robustness against cost, and the recommendation.

Chip k of a run is the same draw for every method (its noise depends on seed, noise, level and
k only), so methods are compared chip by chip (noiseproof.evaluation.statistics): a difference
is "indistinguishable" from the best when its interval holds 0. Training cost is the mean over
seeds of each training's FLOPs (torch's counter) and wall seconds.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any, Literal

import torch

from noiseproof.errors import NoiseproofError
from noiseproof.evaluation.statistics import bootstrap_interval, paired_difference
from noiseproof.experiments.results import grouped, metric_stats, primary_metric, show
from noiseproof.seeding import derive_seed

By = Literal["mean", "worst"]


def chip_values(records: Sequence[dict[str, Any]], metric: str) -> torch.Tensor | None:
    """[seeds, chips] per-chip values of `metric` of one method at one level (records sorted by
    seed), or None when a record has no per-chip values (written before they were kept)."""
    rows = sorted(records, key=lambda r: r["seed"])
    if not all(metric in r.get("per_chip", {}) for r in rows):
        return None
    return torch.tensor([r["per_chip"][metric] for r in rows], dtype=torch.float64)


def training_cost(trainings: Sequence[dict[str, Any]], method: str) -> dict[str, float]:
    """Mean over seeds of a method's training FLOPs and seconds (0 where not recorded)."""
    own = [t.get("cost", {}) for t in trainings if t.get("method") == method]
    if not own:
        return {"flops": 0.0, "seconds": 0.0}
    return {
        key: sum(float(c.get(key, 0.0)) for c in own) / len(own) for key in ("flops", "seconds")
    }


def compare_level(
    by_method: dict[str, list[dict[str, Any]]],
    trainings: Sequence[dict[str, Any]],
    confidence: float,
    seed: int,
    by: By = "mean",
) -> dict[str, Any]:
    """Every method at one (noise, level): its value (mean or worst chip of the primary metric,
    over seeds), the interval of its mean, its paired difference from the best, whether it is
    indistinguishable from the best, clean value and training cost (a calibrated chip's: the
    training of the method it was calibrated from; `cost_recorded` False where the run kept
    none); and the best's label."""
    first = first_record(by_method)
    metric = primary_metric(first)
    higher = metric_stats(first, metric).get("higher_is_better", True)
    key = "worst" if by == "worst" else "mean"
    value = {
        m: sum(metric_stats(r, metric).get(key, metric_stats(r, metric)["min"]) for r in rs)
        / len(rs)
        for m, rs in by_method.items()
    }
    best = (max if higher else min)(value, key=value.__getitem__)
    chips = {m: chip_values(rs, metric) for m, rs in by_method.items()}
    rows = []
    for method, records in by_method.items():
        gen = torch.Generator().manual_seed(derive_seed(seed, "decision", method))
        trained = records[0].get("calibrated_from", method)  # a calibrated chip's training
        row: dict[str, Any] = {
            "method": method,
            "value": value[method],
            "worst": sum(
                metric_stats(r, metric).get("worst", metric_stats(r, metric)["min"])
                for r in records
            )
            / len(records),
            "clean": sum(r.get("clean", {}).get(metric, math.nan) for r in records) / len(records),
            "cost": training_cost(trainings, trained),
            "cost_recorded": any(t.get("method") == trained and "cost" in t for t in trainings),
        }
        own, best_chips = chips[method], chips[best]
        if own is not None and by == "mean":
            row["interval"] = bootstrap_interval(own, gen, confidence=confidence).as_dict()
        if own is not None and best_chips is not None and own.shape == best_chips.shape:
            if by == "mean":
                diff = paired_difference(own, best_chips, gen, confidence=confidence)
                row["difference"] = diff.as_dict()
                row["indistinguishable"] = method == best or diff.contains(0.0)
            else:  # worst chips: extremes have no reliable interval; compare the values
                row["indistinguishable"] = method == best
        rows.append(row)
    return {"metric": metric, "higher_is_better": higher, "by": by, "best": best, "methods": rows}


def comparisons(
    records: Sequence[dict[str, Any]],
    trainings: Sequence[dict[str, Any]],
    confidence: float = 0.95,
    seed: int = 0,
) -> list[dict[str, Any]]:
    """`compare_level` (by the mean) for every noise model and level of a run."""
    out = []
    for noise, by_method in grouped(records).items():
        levels = sorted({lv for by_level in by_method.values() for lv in by_level})
        for level in levels:
            present = {m: bl[level] for m, bl in by_method.items() if level in bl}
            decided = compare_level(present, trainings, confidence, derive_seed(seed, noise, level))
            out.append({"noise": noise, "level": level, **decided})
    return out


def pareto_front(points: Sequence[tuple[str, float, float]], higher: bool) -> list[str]:
    """The labels not dominated in (metric, cost): another point at least as good in both and
    better in one dominates (metric: higher or lower is better; cost: lower is better)."""

    def better_or_equal(a: float, b: float) -> bool:
        return a >= b if higher else a <= b

    front = []
    for label, metric, cost in points:
        dominated = any(
            better_or_equal(m, metric) and c <= cost and (m != metric or c != cost)
            for other, m, c in points
            if other != label
        )
        if not dominated:
            front.append(label)
    return front


def pareto(comparisons_: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """Per noise model and level: the non-dominated methods of the robust metric, the mean
    over chips (`robust_*`) and the worst chip (`worst_*`), against training cost (FLOPs) and
    against the clean metric."""
    out = []
    for item in comparisons_:
        rows, higher = item["methods"], item["higher_is_better"]
        sign = 1.0 if higher else -1.0  # clean metric: also better in the same direction
        front = {"noise": item["noise"], "level": item["level"], "metric": item["metric"]}
        for prefix, key in (("robust", "value"), ("worst", "worst")):
            if not all(key in r for r in rows):  # comparisons written before `worst` was kept
                continue
            by_cost = [(r["method"], r[key], r["cost"]["flops"]) for r in rows]
            by_clean = [(r["method"], r[key], -sign * r["clean"]) for r in rows]
            front[f"{prefix}_vs_train_cost"] = pareto_front(by_cost, higher)
            front[f"{prefix}_vs_clean"] = pareto_front(by_clean, higher)
        out.append(front)
    return out


def recommend(
    results: dict[str, Any],
    noise: str,
    level: float,
    *,
    within: float | None = None,
    by: By = "mean",
    max_train_cost: float | None = None,
    confidence: float = 0.95,
) -> dict[str, Any]:
    """The cheapest method (least training FLOPs; among equal ones the better) whose robust
    metric (`by`: the mean over chips, or the worst chip) is within `within` of the best, or
    indistinguishable from it (its chip-paired interval holds 0) when `within` is None;
    methods above `max_train_cost` FLOPs are left out. Returns {'method' (None when the run
    cannot decide), 'lines' (the evidence, one per line), 'comparison'}. NoiseproofError (one
    line) for a noise or level not in the run, within < 0 or a confidence outside (0, 1)."""
    if within is not None and (not math.isfinite(within) or within < 0):
        raise NoiseproofError(f"--within must be >= 0 and finite, got {within}")
    if not 0 < confidence < 1:
        raise NoiseproofError(f"confidence must be in (0, 1), got {confidence}")
    if by not in ("mean", "worst"):
        raise NoiseproofError(f"--by must be mean or worst, got {by!r}")
    table = grouped(results["jobs"])
    if noise not in table:
        raise NoiseproofError(f"--noise {noise!r} is not in this run (it has {', '.join(table)})")
    by_method = {m: bl[level] for m, bl in table[noise].items() if level in bl}
    if not by_method:
        levels = sorted({lv for bl in table[noise].values() for lv in bl})
        shown = ", ".join(f"{lv:g}" for lv in levels)
        raise NoiseproofError(f"--level {level:g} is not in this run for {noise} (it has {shown})")
    seed = derive_seed(0, noise, level)
    decided = compare_level(by_method, results.get("trainings", []), confidence, seed, by)
    chips = first_record(by_method)["transfers"]
    return choose(decided, noise, level, chips, within=within, by=by, max_train_cost=max_train_cost)


def choose(
    decided: dict[str, Any],
    noise: str,
    level: float,
    chips: int,
    *,
    within: float | None = None,
    by: By = "mean",
    max_train_cost: float | None = None,
) -> dict[str, Any]:
    """`recommend`'s decision from one level's `compare_level` result (`decided`, made `by`
    the mean or the worst chip; `chips` per seed, for how many more would decide a tie): the
    same return. The report's summary passes the run's comparisons here, so each level is
    bootstrapped once."""
    rows = {r["method"]: r for r in decided["methods"]}
    best, metric = decided["best"], decided["metric"]
    best_value = rows[best]["value"]

    def close(row: dict[str, Any]) -> bool:
        if within is not None:
            return abs(row["value"] - best_value) <= within
        return row["method"] == best or bool(row.get("indistinguishable"))

    allowed = [
        r
        for r in decided["methods"]
        if max_train_cost is None or r["cost"]["flops"] <= max_train_cost
    ]
    sign = -1.0 if decided["higher_is_better"] else 1.0
    candidates = sorted(  # cheapest to train; among equally cheap, the better one
        (r for r in allowed if close(r)), key=lambda r: (r["cost"]["flops"], sign * r["value"])
    )
    lines = [
        f"{noise} = {level:g}, {by} {metric} over chips (best: {best}, {best_value:.4g})",
    ]
    for row in decided["methods"]:
        diff = row.get("difference")
        shown = (
            f"difference {diff['value']:+.4g} [{diff['low']:+.4g}, {diff['high']:+.4g}]"
            if diff is not None and row["method"] != best
            else "best"
            if row["method"] == best
            else "no chip-paired interval"
        )
        cost = (
            f"train {row['cost']['flops']:.3g} FLOPs / {row['cost']['seconds']:.1f} s"
            if row.get("cost_recorded")
            else "training cost not recorded"
        )
        lines.append(f"  {row['method']}: {row['value']:.4g}, {shown}, {cost}")
    if not candidates:
        lines.append("no method fits the limits given (--max-train-cost)")
        return {"method": None, "lines": lines, "comparison": decided}
    chosen = candidates[0]
    why = (
        f"within {within:g} of the best"
        if within is not None
        else "indistinguishable from the best"
        if chosen["method"] != best
        else "the best"
    )
    lines.append(f"recommend: {chosen['method']} ({why}, the cheapest such to train)")
    tied = [r for r in decided["methods"] if r["method"] != best and r.get("indistinguishable")]
    if within is None and tied:
        more = chips_needed(tied, chips)
        lines.append(
            "cannot tell "
            + ", ".join(r["method"] for r in tied)
            + f" from {best} at this precision"
            + (f": about {more} chips per seed would" if more else "")
        )
    return {"method": chosen["method"], "lines": lines, "comparison": decided}


def first_record(by_method: dict[str, list[dict[str, Any]]]) -> dict[str, Any]:
    """Any one record of a level (they share transfers, task and noise)."""
    return next(iter(by_method.values()))[0]


def chips_needed(tied: Sequence[dict[str, Any]], chips: int) -> int | None:
    """Chips per seed for the widest tied difference's interval to exclude 0, if the observed
    difference held: the half-width shrinks as 1/sqrt(chips). None when a difference is 0."""
    needed = 0
    for row in tied:
        diff = row.get("difference")
        if diff is None or diff["value"] == 0:
            return None
        half = (diff["high"] - diff["low"]) / 2
        needed = max(needed, math.ceil(chips * (half / abs(diff["value"])) ** 2))
    return needed or None


def verdict_rows(
    comparisons_: Sequence[dict[str, Any]], noise: str
) -> tuple[list[str], list[list[str]]]:
    """Header and rows for one noise model: per level the best method (mean of the primary
    metric, its interval) and the methods indistinguishable from it (chip-paired interval
    holding 0); the interval's confidence is the run's `confidence`."""
    header = ["level", "best (mean)", "interval of its mean", "indistinguishable from the best"]
    rows = []
    for item in comparisons_:
        if item["noise"] != noise:
            continue
        by_method = {r["method"]: r for r in item["methods"]}
        best = by_method[item["best"]]
        interval = best.get("interval")
        metric = item["metric"]
        shown = (
            f"{show(interval['low'], metric)} .. {show(interval['high'], metric)}"
            if interval
            else "-"
        )
        tied = [m for m, r in by_method.items() if m != item["best"] and r.get("indistinguishable")]
        rows.append(
            [
                f"{item['level']:g}",
                f"{item['best']} ({show(best['value'], metric)})",
                shown,
                ", ".join(tied) or "none",
            ]
        )
    return header, rows

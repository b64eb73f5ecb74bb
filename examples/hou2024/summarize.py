"""Seed-level summary of a `noiseproof compare` run for the Hou et al. 2024 comparison.

usage: python examples/hou2024/summarize.py RUN_FOLDER [RUN_FOLDER ...] [--baseline noise_injection]
       [--at 0.2]

Reads RUN_FOLDER/jobs/*.json of each folder (so a run still in progress can be summarised; several
folders of the same grid split by method are merged) and prints, per
method and noise level, the mean over seeds of each seed's mean accuracy over its transfers,
with the spread over seeds (sample std) and the mean within-seed std over transfers; then the
paired difference to the baseline method at one level (same seeds, same chips per seed); and
the training time per method.
"""

from __future__ import annotations

import argparse
import json
import statistics
from collections import defaultdict
from pathlib import Path


def load(folder: Path) -> list[dict]:
    """Every finished job record of the run."""
    return [json.loads(p.read_text()) for p in sorted((folder / "jobs").glob("*.json"))]


def spread(values: list[float]) -> float:
    """Sample standard deviation (0 for a single value)."""
    return statistics.stdev(values) if len(values) > 1 else 0.0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("runs", type=Path, nargs="+")
    parser.add_argument("--baseline", default="noise_injection")
    parser.add_argument("--at", type=float, default=0.2)
    args = parser.parse_args()
    records = [r for folder in args.runs for r in load(folder)]
    if not records:
        raise SystemExit(f"no finished jobs in {', '.join(str(f / 'jobs') for f in args.runs)}")
    table: dict[str, dict[float, dict[int, dict]]] = defaultdict(lambda: defaultdict(dict))
    for r in records:
        table[r["method"]][r["level"]][r["seed"]] = r
    levels = sorted({r["level"] for r in records})
    noise = records[0]["noise"]
    print(
        f"accuracy % under {noise}: mean over seeds ± std over seeds [mean within-seed std "
        "over transfers]; n = seeds"
    )
    clean_column = 0.0 not in levels  # eta = 0 is the clean accuracy; else show it apart
    header = ["method", "n", *(["clean"] * clean_column), *[f"eta={lv:g}" for lv in levels]]
    rows = []
    for method, by_level in table.items():
        cells = [method, str(len(next(iter(by_level.values()))))]
        if clean_column:
            first = list(next(iter(by_level.values())).values())
            clean = [100 * r["clean_accuracy"] for r in first]
            cells.append(f"{statistics.mean(clean):.2f} ± {spread(clean):.2f}")
        for level in levels:
            runs = list(by_level.get(level, {}).values())
            if not runs:
                cells.append("-")
                continue
            means = [100 * r["accuracy"]["mean"] for r in runs]
            within = statistics.mean(100 * r["accuracy"]["std"] for r in runs)
            cells.append(f"{statistics.mean(means):.2f} ± {spread(means):.2f} [{within:.2f}]")
        rows.append(cells)
    print("| " + " | ".join(header) + " |")
    print("|" + "---|" * len(header))
    for row in rows:
        print("| " + " | ".join(row) + " |")

    base = table.get(args.baseline, {}).get(args.at, {})
    print(f"\npaired difference to {args.baseline} at eta={args.at:g} (percentage points)")
    for method, by_level in table.items():
        if method == args.baseline:
            continue
        runs = by_level.get(args.at, {})
        seeds = sorted(set(runs) & set(base))
        if not seeds:
            continue
        diffs = [100 * (runs[s]["accuracy"]["mean"] - base[s]["accuracy"]["mean"]) for s in seeds]
        per_seed = ", ".join(f"{d:+.2f}" for d in diffs)
        print(
            f"  {method}: {statistics.mean(diffs):+.2f} ± {spread(diffs):.2f} "
            f"over {len(seeds)} seed(s) ({per_seed})"
        )

    print("\ntraining time per model (s, mean over seeds) and best epoch")
    for method, by_level in table.items():
        runs = list(next(iter(by_level.values())).values())
        seconds = statistics.mean(r["training"]["train_seconds"] for r in runs)
        epochs = [r["training"]["best_epoch"] for r in runs]
        print(f"  {method}: {seconds:.0f} s, best epochs {epochs}")

    finished = [f / "results.json" for f in args.runs if (f / "results.json").is_file()]
    if finished:
        print("\nloss terms logged in training, first epoch -> last (per seed)")
    for path in finished:
        for run in json.loads(path.read_text())["trainings"]:
            first, last = run["history"][0], run["history"][-1]
            names = [k for k in first if k not in ("epoch", "lr", "seconds", "val_accuracy")]
            shown = ", ".join(f"{k} {first[k]:.3f} -> {last[k]:.3f}" for k in names)
            print(f"  {run['method']} seed {run['seed']}: {shown}")


if __name__ == "__main__":
    main()

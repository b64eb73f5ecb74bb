"""Accuracy degradation under variation, and its ratio to the baseline's (the WVAT claim).

usage: python examples/hou2024/degradation.py RUN_FOLDER [RUN_FOLDER ...] [--baseline standard]

The WVAT paper (ICLR 2023 submission) states its result as a ratio: the accuracy a network
loses under weight variation, WVAT's over plain SGD's, is below 1/10. Here, per seed and noise
level, degradation = clean accuracy - mean accuracy over the transfers (simulated chips), in
points, read from RUN_FOLDER/jobs/*.json (folders of the same grid split by seed are merged).
Printed per method and level: degradation mean ± std over seeds (per seed), and the ratio
degradation(method) / degradation(baseline) per seed (same seed: same data order, same
chips' draws), as mean ± std over seeds with the per-seed values and the ratio of the means.
"""

from __future__ import annotations

import argparse
import statistics
from collections import defaultdict
from pathlib import Path

from summarize import load, spread  # the sibling script: job records and their spread


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("runs", type=Path, nargs="+")
    parser.add_argument("--baseline", default="standard")
    args = parser.parse_args()
    records = [r for folder in args.runs for r in load(folder)]
    if not records:
        raise SystemExit(f"no finished jobs in {', '.join(str(f / 'jobs') for f in args.runs)}")
    # degradation[method][level][seed] in points; clean[method][seed] in %
    degradation: dict[str, dict[float, dict[int, float]]] = defaultdict(lambda: defaultdict(dict))
    clean: dict[str, dict[int, float]] = defaultdict(dict)
    for r in records:
        c = 100 * r["clean_accuracy"]
        clean[r["method"]][r["seed"]] = c
        degradation[r["method"]][r["level"]][r["seed"]] = c - 100 * r["accuracy"]["mean"]
    levels = sorted({r["level"] for r in records})
    noise = records[0]["noise"]
    print(f"degradation under {noise} = clean - mean over transfers, points; mean ± std over seeds")
    print()
    heads = [f"accuracy at {lv:g} %" for lv in levels] + [f"degradation at {lv:g}" for lv in levels]
    print("| method | clean % | " + " | ".join(heads) + " |")
    print("|---|---|" + "---|" * len(heads))
    order = sorted(degradation, key=lambda m: (m != args.baseline, m))
    for method in order:
        by_level = degradation[method]
        seeds = sorted(clean[method])
        cells = [
            method,
            f"{statistics.mean(clean[method].values()):.2f} ± "
            f"{spread(list(clean[method].values())):.2f}",
        ]
        for level in levels:
            under = [clean[method][s] - by_level[level][s] for s in seeds if s in by_level[level]]
            cells.append(f"{statistics.mean(under):.2f} ± {spread(under):.2f}")
        for level in levels:
            values = [by_level[level][s] for s in seeds if s in by_level[level]]
            per_seed = ", ".join(f"{v:.2f}" for v in values)
            cells.append(f"{statistics.mean(values):.2f} ± {spread(values):.2f} ({per_seed})")
        print("| " + " | ".join(cells) + " |")
    if args.baseline not in degradation:
        return
    print()
    print(
        f"ratio degradation(method) / degradation({args.baseline}), per seed; "
        "mean ± std over seeds (per seed) [ratio of the seed means]"
    )
    print()
    print("| method | " + " | ".join(f"ratio at {lv:g}" for lv in levels) + " |")
    print("|---|" + "---|" * len(levels))
    base = degradation[args.baseline]
    for method in order[1:]:
        by_level = degradation[method]
        cells = [method]
        for level in levels:
            seeds = sorted(set(by_level[level]) & set(base[level]))
            if not seeds or any(base[level][s] == 0 for s in seeds):
                cells.append(f"- ({args.baseline} lost nothing on a seed)")
                continue
            ratios = [by_level[level][s] / base[level][s] for s in seeds]
            of_means = statistics.mean(by_level[level][s] for s in seeds) / statistics.mean(
                base[level][s] for s in seeds
            )
            per_seed = ", ".join(f"{v:.3f}" for v in ratios)
            mean, std = statistics.mean(ratios), spread(ratios)
            cells.append(f"{mean:.3f} ± {std:.3f} ({per_seed}) [{of_means:.3f}]")
        print("| " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()

"""The ablation of standard's collapse (README, "Ablation of standard's collapse"): one table
from compare runs that differ from a baseline in one setting each.

    python examples/buechel2022/ablation.py BASELINE VARIANT [VARIANT ...]

Each folder is a `noiseproof compare` run of one method (standard training, or a robust method
for clean parity) at one zeta over the same seeds and chips. Per run: the clean accuracy and the
accuracy under mismatch (each seed's mean over its chips), mean ± std over seeds with the seeds'
values and the 95 % Student's t interval of the mean (n - 1 degrees of freedom); then each
variant's seed-paired difference from the baseline, at zeta and clean, with its t interval.
Prints markdown.
"""

from __future__ import annotations

import argparse
import json
import statistics
from pathlib import Path

from scipy import stats


def per_seed(folder: Path) -> tuple[float, dict[int, float], dict[int, float]]:
    """(zeta, {seed: clean %}, {seed: mean % over chips}) of the run's one noisy level."""
    jobs = json.loads((folder / "results.json").read_text())["jobs"]
    noisy = [j for j in jobs if j["level"] != 0]
    levels = {j["level"] for j in noisy}
    if len(levels) != 1:
        raise SystemExit(f"error: {folder} must hold one noisy level, it has {sorted(levels)}")
    clean = {j["seed"]: 100 * j["clean"]["accuracy"] for j in noisy}
    under = {j["seed"]: 100 * statistics.fmean(j["per_chip"]["accuracy"]) for j in noisy}
    return levels.pop(), clean, under


def interval(values: list[float]) -> tuple[float, float]:
    """The 95 % Student's t interval of the mean of `values`."""
    mean, n = statistics.fmean(values), len(values)
    half = stats.t.ppf(0.975, n - 1) * statistics.stdev(values) / n**0.5
    return mean - half, mean + half


def spread(values: list[float]) -> str:
    return f"{statistics.fmean(values):.2f} ± {statistics.stdev(values):.2f}"


def paired_change(change: list[float]) -> str:
    """'mean ± std (per seed) | [low, high]' of seed-paired differences, in points."""
    low, high = interval(change)
    shown = ", ".join(f"{v:+.2f}" for v in change)
    return (
        f"{statistics.fmean(change):+.2f} ± {statistics.stdev(change):.2f} ({shown}) "
        f"| [{low:+.2f}, {high:+.2f}]"
    )


def table(baseline: Path, variants: list[Path]) -> str:
    """The two markdown tables: the runs, and the differences from the baseline."""
    zeta, base_clean, base = per_seed(baseline)
    seeds = sorted(base)
    lines = [
        f"| run | clean % | zeta {zeta:g} % (per seed) | 95 % interval |",
        "|---|---|---|---|",
    ]
    runs, cleans = {}, {}
    for folder in [baseline, *variants]:
        level, clean, under = per_seed(folder)
        if level != zeta or sorted(under) != seeds:
            raise SystemExit(f"error: {folder} is not at zeta {zeta:g} on seeds {seeds}")
        runs[folder.name], cleans[folder.name] = under, clean
        values = [under[s] for s in seeds]
        low, high = interval(values)
        shown = ", ".join(f"{v:.2f}" for v in values)
        lines.append(
            f"| {folder.name} | {spread([clean[s] for s in seeds])} | {spread(values)} "
            f"({shown}) | [{low:.2f}, {high:.2f}] |"
        )
    lines += [
        "",
        f"| {baseline.name} -> | change at zeta {zeta:g} (points, per seed) | 95 % interval "
        "| clean change (points, per seed) | 95 % interval |",
        "|---|---|---|---|---|",
    ]
    for folder in variants:
        under = paired_change([runs[folder.name][s] - base[s] for s in seeds])
        clean = paired_change([cleans[folder.name][s] - base_clean[s] for s in seeds])
        lines.append(f"| {folder.name} | {under} | {clean} |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> str:
    """Command line (module docstring)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("baseline", type=Path, help="compare run of the baseline")
    parser.add_argument("variants", type=Path, nargs="+", help="compare runs, one change each")
    args = parser.parse_args(argv)
    for folder in [args.baseline, *args.variants]:
        if not (folder / "results.json").is_file():
            parser.error(f"{folder} holds no results.json (not a finished compare run)")
    text = table(args.baseline, args.variants)
    print(text, end="")
    return text


if __name__ == "__main__":
    main()

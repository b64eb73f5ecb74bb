"""Reproduce Drolet et al. 2023: regular vs hardware-aware 2-8-1 on moons, 1000 TiO2 transfers.

    python examples/drolet2023/run.py [--out runs/drolet2023] [--resume] [--quick]

Runs `noiseproof compare` with config.yaml beside this file, then prints and writes
(summary.md, summary.json in --out) per seed: clean test accuracy and the share of test points
classified correctly in >= 95% of transfers; per method: mean and std over seeds, and the same
over the seeds whose regular training converged (clean test accuracy >= 99%). The paper's
numbers: 18.5% (regular) vs 79.5% (hardware-aware).
--quick: 2 seeds, 20 epochs, 20 transfers (a smoke run, not a reproduction).
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path
from typing import Any

from noiseproof.atomic import write_json_atomic, write_text_atomic
from noiseproof.config import ExperimentConfig, read_yaml
from noiseproof.experiments.compare import run_compare

HERE = Path(__file__).resolve().parent
PAPER = {"regular": 0.185, "hardware-aware": 0.795}
CONVERGED = 0.99


def quick(raw: dict[str, Any]) -> dict[str, Any]:
    """The smoke-run variant of a config: 2 seeds, 20 epochs, 20 transfers."""
    return {**raw, "seeds": [0, 1], "transfers": 20, "train": {**raw["train"], "epochs": 20}}


def spread(values: list[float]) -> tuple[float, float]:
    """Mean and sample std (0 for one value); NaN for none."""
    if not values:
        return float("nan"), float("nan")
    return statistics.fmean(values), statistics.stdev(values) if len(values) > 1 else 0.0


def summarise(results: dict[str, Any]) -> dict[str, Any]:
    """Per seed and per method: clean accuracy, reliability share, mean/std, converged mean."""
    rows = [
        {
            "method": r["method"],
            "seed": r["seed"],
            "clean_accuracy": r["clean_accuracy"],
            "share": r["reliability"]["share"],
            "accuracy_mean": r["accuracy"]["mean"],
        }
        for r in results["jobs"]
    ]
    methods: dict[str, Any] = {}
    for method in dict.fromkeys(r["method"] for r in rows):
        mine = [r for r in rows if r["method"] == method]
        done = [r for r in mine if r["clean_accuracy"] >= CONVERGED]
        mean, std = spread([r["share"] for r in mine])
        c_mean, c_std = spread([r["share"] for r in done])
        methods[method] = {
            "share_mean": mean,
            "share_std": std,
            "converged_seeds": [r["seed"] for r in done],
            "converged_share_mean": c_mean,
            "converged_share_std": c_std,
            "clean_mean": statistics.fmean(r["clean_accuracy"] for r in mine),
            "paper_share": PAPER.get(method),
        }
    return {"seeds": rows, "methods": methods, "wall_seconds": results["wall_seconds"]}


def markdown(summary: dict[str, Any], transfers: int) -> str:
    """Tables: per seed, then per method next to the paper."""
    pct = "{:.1f}".format
    lines = [
        f"Per seed ({transfers} transfers each; share = test points right in >= 95% of them):",
        "",
        "| method | seed | clean test acc (%) | mean transfer acc (%) | share >= 95% (%) |",
        "|---|---|---|---|---|",
    ]
    for r in summary["seeds"]:
        lines.append(
            f"| {r['method']} | {r['seed']} | {pct(100 * r['clean_accuracy'])} | "
            f"{pct(100 * r['accuracy_mean'])} | {pct(100 * r['share'])} |"
        )
    lines += [
        "",
        "| method | share, all seeds (%) | converged seeds (clean >= 99%) | share, converged (%) "
        "| paper (%) |",
        "|---|---|---|---|---|",
    ]
    for method, m in summary["methods"].items():
        paper = "-" if m["paper_share"] is None else pct(100 * m["paper_share"])
        lines.append(
            f"| {method} | {pct(100 * m['share_mean'])} ± {pct(100 * m['share_std'])} | "
            f"{len(m['converged_seeds'])} {m['converged_seeds']} | "
            f"{pct(100 * m['converged_share_mean'])} ± {pct(100 * m['converged_share_std'])} | "
            f"{paper} |"
        )
    lines += ["", f"compare wall time: {summary['wall_seconds']:.1f} s"]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="runs/drolet2023", help="output folder")
    parser.add_argument("--config", default=str(HERE / "config.yaml"), help="config YAML")
    parser.add_argument("--resume", action="store_true", help="continue an interrupted run")
    parser.add_argument("--quick", action="store_true", help="2 seeds, 20 epochs, 20 transfers")
    parser.add_argument("--no-progress", action="store_true", help="hide progress bars")
    args = parser.parse_args(argv)
    raw = read_yaml(args.config)
    config = ExperimentConfig.parse(quick(raw) if args.quick else raw)
    started = time.perf_counter()
    results = run_compare(
        config, args.out, resume=args.resume, progress=not args.no_progress, log=print
    )
    summary = summarise(results)
    summary["script_wall_seconds"] = time.perf_counter() - started
    text = markdown(summary, config.transfers)
    write_json_atomic(Path(args.out) / "summary.json", summary)
    write_text_atomic(Path(args.out) / "summary.md", text)
    print()
    print(text, end="")
    print(f"script wall time: {summary['script_wall_seconds']:.1f} s")
    return summary


if __name__ == "__main__":
    main()

"""Reproduce Drolet et al. 2023 (arXiv 2305.18495): regular vs hardware-aware 2-8-1 on moons.

    python examples/drolet2023/run.py [--out runs/drolet2023] [--config FILE] [--resume]
                                      [--set KEY=VALUE ...] [--set-size 1000] [--quick]

Runs `noiseproof compare` with config.yaml beside this file (the authors' protocol: overlapping
moons, Xavier init, Adam 0.1, final weights after 10,000 epochs, measured program disturb,
10,000 transfers), then re-evaluates every trained network on the same chips cut into draw sets
of --set-size transfers (chips [i * size, (i + 1) * size) of the run) and writes
summary.md / summary.json in --out: per seed the clean test accuracy, the share of test points
right in >= 95% of all transfers (the paper's metric) and its mean / std / min / max over the
draw sets; per method the mean and std over seeds. The paper: 18.5% (regular) vs 79.5%
(hardware-aware), from ~1000 transfers of one network each.
--set: override a config key as `noiseproof compare --set` does (the ablations in README.md).
--quick: 2 seeds, 20 epochs, 40 transfers in sets of 20 (a smoke run, not a reproduction).
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path
from typing import Any

import torch

from noiseproof.atomic import write_json_atomic, write_text_atomic
from noiseproof.config import ExperimentConfig, apply_override, read_yaml
from noiseproof.evaluation.metrics import reliability
from noiseproof.evaluation.transfers import TransferResult
from noiseproof.experiments.compare import run_compare
from noiseproof.experiments.jobs import evaluate_chips
from noiseproof.restore import model_from_checkpoint
from noiseproof.training.checkpoints import load_checkpoint

HERE = Path(__file__).resolve().parent
PAPER = {"regular": 0.185, "hardware-aware": 0.795}
NONLINEAR = 0.93
"""Clean test accuracy above which a network has left the near-linear plateau (86-89% on these
data; the nonlinear boundary reaches 96-98%)."""


def quick(raw: dict[str, Any]) -> dict[str, Any]:
    """The smoke-run variant of a config: 2 seeds, 20 epochs, 40 transfers."""
    return {**raw, "seeds": [0, 1], "transfers": 40, "train": {**raw["train"], "epochs": 20}}


def spread(values: list[float]) -> tuple[float, float]:
    """Mean and sample std (0 for one value); NaN for none."""
    if not values:
        return float("nan"), float("nan")
    return statistics.fmean(values), statistics.stdev(values) if len(values) > 1 else 0.0


def draw_sets(config: ExperimentConfig, out: Path, size: int) -> dict[tuple[str, int], Any]:
    """Share (>= threshold) of each trained network on each draw set of `size` chips.

    The chips are those `noiseproof compare` evaluated (same seed, noise label and level, chip
    k = k-th chip of the run), cut into transfers // size consecutive sets; {(method, seed):
    {"sets": [share of set 0, ...], "share": share over all sets together}} (the latter equals
    compare's share). Raises ValueError if size does not divide the transfers.
    """
    if size < 1 or config.transfers % size:
        raise ValueError(f"--set-size {size} must divide transfers ({config.transfers})")
    data = config.dataset.load()
    entry = config.noise[0]
    noise = entry.model.with_level(config.levels[0])
    shares: dict[tuple[str, int], Any] = {}
    for method in config.methods:
        for seed in config.seeds:
            state, meta = load_checkpoint(out / "checkpoints" / f"{method.label}-seed{seed}.pt")
            model = model_from_checkpoint(state, meta)
            results = [
                evaluate_chips(
                    model,
                    data,
                    noise,
                    transfers=size,
                    seed=seed,
                    noise_label=entry.label,
                    selection=config.chip,
                    first_chip=first,
                    batch_size=config.eval_batch_size,
                )
                for first in range(0, config.transfers, size)
            ]
            whole = TransferResult(
                task=results[0].task,
                sums=torch.cat([r.sums for r in results]),
                correct_counts=sum(r.correct_counts for r in results),
            )
            shares[method.label, seed] = {
                "sets": [reliability(r, config.reliability_threshold)["share"] for r in results],
                "share": reliability(whole, config.reliability_threshold)["share"],
            }
    return shares


def summarise(results: dict[str, Any], sets: dict[tuple[str, int], Any]) -> dict[str, Any]:
    """Per seed and per method: clean accuracy, share over all transfers, its draw-set spread."""
    rows = []
    for r in results["jobs"]:
        mine = sets[r["method"], r["seed"]]["sets"]
        set_mean, set_std = spread(mine)
        rows.append(
            {
                "method": r["method"],
                "seed": r["seed"],
                "clean_accuracy": r["clean_accuracy"],
                "accuracy_mean": r["accuracy"]["mean"],
                "share": r["reliability"]["share"],
                "sets_share": sets[r["method"], r["seed"]]["share"],
                "set_shares": mine,
                "set_mean": set_mean,
                "set_std": set_std,
                "set_min": min(mine),
                "set_max": max(mine),
            }
        )
    methods: dict[str, Any] = {}
    for method in dict.fromkeys(r["method"] for r in rows):
        mine = [r for r in rows if r["method"] == method]
        mean, std = spread([r["share"] for r in mine])
        methods[method] = {
            "share_mean": mean,
            "share_std": std,
            "set_std_mean": statistics.fmean(r["set_std"] for r in mine),
            "clean_mean": statistics.fmean(r["clean_accuracy"] for r in mine),
            "nonlinear_seeds": [r["seed"] for r in mine if r["clean_accuracy"] >= NONLINEAR],
            "paper_share": PAPER.get(method),
        }
    return {"seeds": rows, "methods": methods, "wall_seconds": results["wall_seconds"]}


def markdown(summary: dict[str, Any], transfers: int, size: int) -> str:
    """Tables: per seed (with the draw-set spread), then per method next to the paper."""
    pct = "{:.1f}".format
    count = transfers // size
    lines = [
        f"Per seed: share = test points right in >= 95% of {transfers} transfers; over "
        f"{count} draw sets of {size} transfers: mean ± std [min, max] of the share.",
        "",
        "| method | seed | clean test acc (%) | mean transfer acc (%) | share (%) "
        f"| share per {size} transfers (%) |",
        "|---|---|---|---|---|---|",
    ]
    for r in summary["seeds"]:
        lines.append(
            f"| {r['method']} | {r['seed']} | {pct(100 * r['clean_accuracy'])} | "
            f"{pct(100 * r['accuracy_mean'])} | {pct(100 * r['share'])} | "
            f"{pct(100 * r['set_mean'])} ± {pct(100 * r['set_std'])} "
            f"[{pct(100 * r['set_min'])}, {pct(100 * r['set_max'])}] |"
        )
    lines += [
        "",
        "| method | share, mean ± std over seeds (%) | draw-set std, mean over seeds (points) "
        f"| clean test acc (%) | seeds with clean >= {pct(100 * NONLINEAR)}% | paper (%) |",
        "|---|---|---|---|---|---|",
    ]
    for method, m in summary["methods"].items():
        paper = "-" if m["paper_share"] is None else pct(100 * m["paper_share"])
        lines.append(
            f"| {method} | {pct(100 * m['share_mean'])} ± {pct(100 * m['share_std'])} | "
            f"{pct(100 * m['set_std_mean'])} | {pct(100 * m['clean_mean'])} | "
            f"{len(m['nonlinear_seeds'])} {m['nonlinear_seeds']} | {paper} |"
        )
    lines += ["", f"compare wall time: {summary['wall_seconds']:.1f} s"]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> dict[str, Any]:
    """Command line: compare, draw sets, summary (module docstring)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="runs/drolet2023", help="output folder")
    parser.add_argument("--config", default=str(HERE / "config.yaml"), help="config YAML")
    parser.add_argument("--resume", action="store_true", help="continue an interrupted run")
    parser.add_argument("--set", action="append", default=[], help="KEY=VALUE override")
    parser.add_argument("--set-size", type=int, help="transfers per draw set (default 1000)")
    parser.add_argument("--quick", action="store_true", help="2 seeds, 20 epochs, 40 transfers")
    parser.add_argument("--no-progress", action="store_true", help="hide progress bars")
    args = parser.parse_args(argv)
    size = args.set_size or (20 if args.quick else 1000)
    raw = read_yaml(args.config)
    for assignment in args.set:
        apply_override(raw, assignment)
    config = ExperimentConfig.parse(quick(raw) if args.quick else raw)
    if size < 1 or config.transfers % size:
        parser.error(f"--set-size {size} must divide transfers ({config.transfers})")
    started = time.perf_counter()
    results = run_compare(
        config, args.out, resume=args.resume, progress=not args.no_progress, log=print
    )
    with torch.no_grad():
        sets = draw_sets(config, Path(args.out), size)
    summary = summarise(results, sets)
    summary["script_wall_seconds"] = time.perf_counter() - started
    text = markdown(summary, config.transfers, size)
    write_json_atomic(Path(args.out) / "summary.json", summary)
    write_text_atomic(Path(args.out) / "summary.md", text)
    print()
    print(text, end="")
    print(f"script wall time: {summary['script_wall_seconds']:.1f} s")
    return summary


if __name__ == "__main__":
    main()

"""Which crossbar effect makes the Drolet 2023 networks unreliable: each one changed alone.

    python examples/drolet2023/effects.py RUN_DIR [--transfers 2000]

RUN_DIR is an output folder of run.py (its config.yaml and checkpoints/). Every trained network
is evaluated on `--transfers` chips of the run's tio2_crossbar noise (the same chips as the run:
same seed, label and level), then with one change at a time: each effect switched off
(tuning offset, programming noise, program disturb, stuck devices), our earlier Gaussian
program disturb (m = 1 uS, s = 2 uS), working devices clipped to [G_min, G_max], biases on
their layer's scale. Prints per method the mean over seeds of the share of test points right
in >= 95% of transfers (Drolet et al. 2023, arXiv 2305.18495), and the mean paired change
against 'all'; writes effects.md / effects.json in RUN_DIR. A variant that switches a random
effect off draws the remaining effects from other random numbers than 'all' does.
"""

from __future__ import annotations

import argparse
import statistics
from pathlib import Path
from typing import Any

import torch

from noiseproof.atomic import write_json_atomic, write_text_atomic
from noiseproof.config import ExperimentConfig, read_yaml
from noiseproof.evaluation.metrics import reliability
from noiseproof.experiments.jobs import evaluate_chips
from noiseproof.restore import model_from_checkpoint
from noiseproof.training.checkpoints import load_checkpoint

VARIANTS: dict[str, dict[str, Any]] = {
    "no offset": {"offset": False},
    "no programming_noise": {"programming_noise": False},
    "no disturb": {"disturb": False},
    "no stuck": {"stuck": False},
    "disturb gaussian 2 uS": {"disturb_model": "gaussian"},
    "clip": {"clip": True},
    "bias_scale layer": {"bias_scale": "layer"},
}


def shares(config: ExperimentConfig, run: Path, transfers: int) -> dict[str, Any]:
    """{method: {variant: [share per seed]}}; variants 'all' and those of VARIANTS."""
    data = config.dataset.load()
    entry = config.noise[0]
    base = entry.model.with_level(config.levels[0])
    variants = {"all": base} | {
        name: type(base).model_validate({**base.model_dump(), **change})
        for name, change in VARIANTS.items()
    }
    out: dict[str, Any] = {}
    for method in config.methods:
        out[method.label] = {name: [] for name in variants}
        for seed in config.seeds:
            state, meta = load_checkpoint(run / "checkpoints" / f"{method.label}-seed{seed}.pt")
            model = model_from_checkpoint(state, meta)
            for name, noise in variants.items():
                result = evaluate_chips(
                    model,
                    data,
                    noise,
                    transfers=transfers,
                    seed=seed,
                    noise_label=entry.label,
                    selection=config.chip,
                    batch_size=config.eval_batch_size,
                )
                share = reliability(result, config.reliability_threshold)["share"]
                out[method.label][name].append(share)
    return out


def markdown(table: dict[str, Any], transfers: int, seeds: int) -> str:
    """One row per variant: mean share over seeds and the mean paired change against 'all'."""
    methods = list(table)
    lines = [
        f"Share (%) of test points right in >= 95% of {transfers} transfers, mean over "
        f"{seeds} seeds (change against 'all', paired by seed, mean ± std in points):",
        "",
        "| chips | " + " | ".join(methods) + " |",
        "|---|" + "---|" * len(methods),
    ]
    for name in table[methods[0]]:
        cells = []
        for method in methods:
            row = table[method]
            cell = f"{100 * statistics.fmean(row[name]):.1f}"
            if name != "all":
                change = [100 * (a - b) for a, b in zip(row[name], row["all"], strict=True)]
                std = statistics.stdev(change) if len(change) > 1 else 0.0
                cell += f" ({statistics.fmean(change):+.1f} ± {std:.1f})"
            cells.append(cell)
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> dict[str, Any]:
    """Command line (module docstring)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run", help="output folder of run.py")
    parser.add_argument("--transfers", type=int, default=2000, help="chips per evaluation")
    args = parser.parse_args(argv)
    if args.transfers < 1:
        parser.error("--transfers must be >= 1")
    run = Path(args.run)
    config = ExperimentConfig.parse(read_yaml(run / "config.yaml"))
    with torch.no_grad():
        table = shares(config, run, args.transfers)
    text = markdown(table, args.transfers, len(config.seeds))
    write_json_atomic(run / "effects.json", table)
    write_text_atomic(run / "effects.md", text)
    print(text, end="")
    return table


if __name__ == "__main__":
    main()

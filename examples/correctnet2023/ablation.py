"""CorrectNet's gap to "above 95 % of the noise-free accuracy", one difference at a time.

    noiseproof compare --config examples/correctnet2023/ablation.yaml --out RUN
    python examples/correctnet2023/ablation.py RUN

Reads RUN/results.json (the compare run of ablation.yaml) and prints, at its noise level:
per method the clean accuracy, the mean accuracy over chips and what share of the standard
network's noise-free accuracy it keeps (the paper's "original accuracy"); then each step of
STEPS (one difference between two methods of the run) as the chip- and seed-paired difference
of the mean accuracy with its bootstrap interval (noiseproof.evaluation.statistics), and what
is left to 95 %. Writes ablation.md in RUN.
"""

from __future__ import annotations

import argparse
import json
import statistics
from pathlib import Path

import torch

from noiseproof.atomic import write_text_atomic
from noiseproof.evaluation.statistics import paired_difference
from noiseproof.experiments.decision import chip_values

STEPS = (
    ("standard", "lipschitz", "error suppression alone (the Lipschitz regulariser)"),
    ("standard", "noise", "noise injection alone (trained at sigma 0.7)"),
    ("noise", "lipschitz+noise", "error suppression, given noise injection"),
    ("lipschitz+noise", "correctnet", "compensation (placed by REINFORCE, trained at sigma 1.0)"),
    ("standard", "correctnet", "all of CorrectNet against standard training"),
)
"""(from method, to method, the one difference) of each row of the step table."""


def table(results: dict, confidence: float) -> str:
    """The two markdown tables (methods, steps) of one run."""
    jobs = [j for j in results["jobs"] if j["level"] != 0]
    level = jobs[0]["level"]
    by_method: dict[str, list[dict]] = {}
    for job in jobs:
        if job["level"] == level:
            by_method.setdefault(job["method"], []).append(job)
    chips = {m: chip_values(records, "accuracy") for m, records in by_method.items()}
    clean = {
        m: statistics.fmean(r["clean"]["accuracy"] for r in records)
        for m, records in by_method.items()
    }
    original = clean["standard"]
    seeds = len(by_method["standard"])
    lines = [
        f"log-normal sigma {level:g}, {seeds} seeds x {chips['standard'].shape[1]} chips "
        "(the same chips for every method)",
        "",
        "| method | clean % | under noise % (mean over seeds and chips) | seed means % | "
        "% of standard's noise-free |",
        "|---|---|---|---|---|",
    ]
    for method, values in chips.items():
        per_seed = ", ".join(f"{100 * float(v):.2f}" for v in values.mean(1))
        mean = float(values.mean())
        lines.append(
            f"| {method} | {100 * clean[method]:.2f} | {100 * mean:.2f} | {per_seed} | "
            f"{100 * mean / original:.1f} |"
        )
    lines += [
        "",
        f"| step | from -> to | change (points) [{100 * confidence:g} % interval, paired by "
        "chip and seed] |",
        "|---|---|---|",
    ]
    gen = torch.Generator().manual_seed(0)
    for before, after, what in STEPS:
        if before not in chips or after not in chips:
            continue
        diff = paired_difference(chips[after], chips[before], gen, confidence=confidence)
        lines.append(
            f"| {what} | {before} -> {after} | {100 * diff.value:+.2f} "
            f"[{100 * diff.low:+.2f}, {100 * diff.high:+.2f}] |"
        )
    best = max(chips, key=lambda m: float(chips[m].mean()))
    kept = 100 * float(chips[best].mean()) / original
    lines += [
        "",
        f"Best: {best}, {kept:.1f} % of standard's noise-free accuracy; the paper's claim, "
        f"above 95 %, is {95 - kept:.1f} points of that share away.",
    ]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> str:
    """Command line (module docstring)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run", help="output folder of the compare run of ablation.yaml")
    parser.add_argument("--confidence", type=float, default=0.95, help="interval level")
    args = parser.parse_args(argv)
    if not 0 < args.confidence < 1:
        parser.error("--confidence must be in (0, 1)")
    run = Path(args.run)
    if not (run / "results.json").is_file():
        parser.error(f"{run} holds no results.json (run the compare of ablation.yaml first)")
    text = table(json.loads((run / "results.json").read_text()), args.confidence)
    write_text_atomic(run / "ablation.md", text)
    print(text, end="")
    return text


if __name__ == "__main__":
    main()

"""`noiseproof recommend RUN_DIR`: which method to deploy at one noise level of a compare run.

The cheapest method to train whose robust metric (the mean over chips, or the worst chip) is
within --within of the best, or, without --within, indistinguishable from it (the chip-paired
difference's interval holds 0); the evidence printed one line per method; a plain statement
when the run cannot decide and how many chips would (noiseproof.experiments.decision).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from noiseproof.errors import NoiseproofError


@click.command(name="recommend")
@click.argument("run_dir", type=click.Path())
@click.option("--noise", required=True, help="Noise model label of the run.")
@click.option("--level", type=float, required=True, help="Noise level of the run.")
@click.option("--within", type=float, help="Accept methods within this of the best (metric units).")
@click.option(
    "--by",
    type=click.Choice(["mean", "worst"]),
    default="mean",
    show_default=True,
    help="Rank by the mean over chips or by the worst chip.",
)
@click.option("--max-train-cost", type=float, help="Leave out methods above this many FLOPs.")
@click.option(
    "--confidence", type=float, default=0.95, show_default=True, help="Level of the intervals."
)
def command(run_dir: str, **opts: Any) -> None:
    """Name the cheapest method that is as robust as the best at one noise level."""
    from noiseproof.experiments.decision import recommend

    if not 0 < opts["confidence"] < 1:
        raise NoiseproofError(f"--confidence must be in (0, 1), got {opts['confidence']}")
    if opts["max_train_cost"] is not None and not opts["max_train_cost"] >= 0:
        raise NoiseproofError(f"--max-train-cost must be >= 0, got {opts['max_train_cost']}")
    results = read_results(Path(run_dir))
    decided = recommend(
        results,
        opts["noise"],
        opts["level"],
        within=opts["within"],
        by=opts["by"],
        max_train_cost=opts["max_train_cost"],
        confidence=opts["confidence"],
    )
    click.echo("\n".join(decided["lines"]))


JOB_KEYS = ("method", "noise", "level", "seed")
"""What every evaluation record of a compare run names (noiseproof.experiments.results)."""


def read_results(run_dir: Path) -> dict[str, Any]:
    """results.json of a finished compare run; one line when `run_dir` is not a folder, has no
    results.json, or its results hold no evaluation records or ones without JOB_KEYS."""
    from noiseproof.experiments.records import read_json

    if run_dir.exists() and not run_dir.is_dir():
        raise NoiseproofError(f"{run_dir} is a file, not a compare run's folder")
    path = run_dir / "results.json"
    if not path.is_file():
        raise NoiseproofError(f"{run_dir} is not a finished compare run (no results.json)")
    results = read_json(path)
    if not isinstance(results, dict) or not isinstance(results.get("jobs"), list):
        raise NoiseproofError(f"{path} is not a compare run's results (no jobs)")
    if not results["jobs"]:
        raise NoiseproofError(f"{path} holds no evaluation records (jobs is empty)")
    for index, job in enumerate(results["jobs"]):
        missing = [k for k in JOB_KEYS if not isinstance(job, dict) or k not in job]
        if missing or not ("metrics" in job or "accuracy" in job):
            lacks = ", ".join(missing or ["metrics"])
            raise NoiseproofError(f"{path}: jobs[{index}] is not an evaluation record (no {lacks})")
    return results

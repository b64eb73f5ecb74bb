"""Print the README's tables from what run.sh wrote.

    python examples/buechel2022-snn/tables.py [RUN ...]     # default runs/buechel2022-snn

Full tables of the first RUN (seed 0): table 1, relative mismatch on the weights only; 8-bit
weights, chain of 8-bit quantisation and the same mismatch; table 2, the neuron parameters on
the chip too. Cells: mean ± std (min) test accuracy over the chips, in %. Then, over every
seed of every RUN: clean accuracy and mean accuracy at zeta 0.7, mean ± std over the seeds.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

PAPER_ECG_07 = {  # Buechel et al. 2022, LSNN on ECG, mean accuracy at zeta 0.7
    "standard": "58.67",
    "forward_noise_0.3": "80.00",
    "adversarial_0.25": "70.07",
    "forward_noise_0.3+adversarial_0.1": "82.02",
}
ORDER = list(PAPER_ECG_07)


def cells(jobs: list[dict], noise: str) -> dict[str, dict[float, dict]]:
    """{method: {level: job}} for one noise entry."""
    table: dict[str, dict[float, dict]] = {}
    for job in jobs:
        if job["noise"] == noise:
            table.setdefault(job["method"], {})[job["level"]] = job
    return table


def cell(job: dict) -> str:
    acc = job["accuracy"]
    if acc["std"] < 1e-9:  # one deterministic chip: clean, or 8-bit weights alone
        return f"{100 * acc['mean']:.2f}"
    return f"{100 * acc['mean']:.2f} ± {100 * acc['std']:.2f} ({100 * acc['min']:.2f})"


def table(title: str, rows: dict[str, dict[float, dict]], paper: bool) -> None:
    levels = sorted({level for row in rows.values() for level in row})
    print(f"\n{title}\n")
    head = ["method", "clean", *(f"zeta={level:g}" for level in levels)]
    head += ["paper ECG, zeta=0.7"] if paper else []
    print("| " + " | ".join(head) + " |")
    print("|" + "---|" * len(head))
    for method in [m for m in ORDER if m in rows] + [m for m in rows if m not in ORDER]:
        row = rows[method]
        clean = 100 * next(iter(row.values()))["clean_accuracy"]
        line = [method, f"{clean:.2f}", *(cell(row[level]) for level in levels)]
        line += [PAPER_ECG_07.get(method, "")] if paper else []
        print("| " + " | ".join(line) + " |")


def load(root: Path) -> tuple[list[dict], list[dict]]:
    """(jobs of the compare run, jobs of its neuron-chip evaluations) under one RUN folder."""
    jobs = json.loads((root / "results.json").read_text())["jobs"]
    neuron_jobs = []
    for path in sorted((root / "neurons").glob("*-seed*/results.json")):
        # the checkpoint's training seed is in its folder's name (<label>-seed<s>); a job's
        # own "seed" is that of evaluate's noise draws
        trained = int(path.parent.name.rsplit("-seed", 1)[1])
        neuron_jobs += [{**job, "seed": trained} for job in json.loads(path.read_text())["jobs"]]
    return jobs, neuron_jobs


def seeds_summary(runs: list[tuple[list[dict], list[dict]]]) -> None:
    """Clean and zeta-0.7 accuracy, mean ± std over the trained seeds, for each chip."""
    columns = {"clean": {}, "weights": {}, "8-bit + weights": {}, "weights + neurons": {}}
    for jobs, neuron_jobs in runs:
        for job in jobs:
            key = (job["method"], job["seed"])
            columns["clean"][key] = job["clean_accuracy"]
            if job["level"] == 0.7:
                chip = "weights" if job["noise"] == "relative_gaussian" else "8-bit + weights"
                columns[chip][key] = job["accuracy"]["mean"]
        for job in neuron_jobs:
            if job["level"] == 0.7:
                columns["weights + neurons"][(job["method"], job["seed"])] = job["accuracy"]["mean"]
    seeds = sorted({seed for _, seed in columns["clean"]})
    print(f"\nOver trained seeds {seeds}: mean ± std over seeds of (mean over chips), %\n")
    head = ["method", "clean", *(f"zeta=0.7, {chip}" for chip in list(columns)[1:])]
    print("| " + " | ".join(head) + " |")
    print("|" + "---|" * len(head))
    for method in ORDER:
        line = [method]
        for values in columns.values():
            got = [100 * v for (m, _), v in values.items() if m == method]
            if not got:
                line.append("")
                continue
            mean = sum(got) / len(got)
            std = (sum((g - mean) ** 2 for g in got) / max(len(got) - 1, 1)) ** 0.5
            line.append(f"{mean:.2f} ± {std:.2f} (n={len(got)})")
        print("| " + " | ".join(line) + " |")


def main() -> None:
    roots = [Path(p) for p in sys.argv[1:]] or [Path("runs/buechel2022-snn")]
    runs = [load(root) for root in roots]
    jobs, neuron_jobs = runs[0]
    first = min(job["seed"] for job in jobs)
    jobs = [job for job in jobs if job["seed"] == first]
    neuron_jobs = [job for job in neuron_jobs if job["seed"] == first]
    print(f"{roots[0]}, seed {first}")
    table("Table 1: relative mismatch on the weights only", cells(jobs, "relative_gaussian"), True)
    table(
        "8-bit weights (255 levels) + relative mismatch on the weights", cells(jobs, "chain"), False
    )
    if neuron_jobs:
        rows = cells(neuron_jobs, "relative_gaussian")
        table("Table 2: relative mismatch on weights, time constants, thresholds", rows, True)
    seeds_summary(runs)


if __name__ == "__main__":
    main()

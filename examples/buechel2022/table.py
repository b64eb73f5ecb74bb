"""Print the README tables of a Buechel 2022 run: accuracy under mismatch beside the paper's
Table 1, the targeted attack, flatness.

    python examples/buechel2022/table.py runs/buechel2022-full [runs/buechel2022-full-extra ...]

Reads the run folders' jobs/*.json (so it works on a run still in progress: missing cells
print as "-"); several folders (runs of the same config with other methods or other seeds)
make one table. Cells, one seed: mean ± std (min) test accuracy over the transfers, in %,
[paper value]; several seeds: mean over seeds of each seed's mean ± std over seeds (min over
every chip of every seed) {n seeds}.
"""

from __future__ import annotations

import json
import statistics
import sys
from collections import defaultdict
from pathlib import Path

# Table 1 of the paper (mean test accuracy %), keyed by our method labels and zeta.
PAPER = {
    "standard": {0.0: 91.30, 0.3: 82.70, 0.5: 61.14, 0.7: 36.93},
    "adversarial_0.25": {0.0: 92.11, 0.3: 89.64, 0.5: 85.96, 0.7: 79.39},
    "forward_noise_0.3": {0.0: 92.00, 0.3: 91.01, 0.5: 87.82, 0.7: 78.48},
    "forward_noise_0.3+adversarial_0.1": {0.0: 91.88, 0.3: 91.25, 0.5: 89.36, 0.7: 84.19},
    "awp": {0.7: 65.38},
    "dropout": {0.7: 53.91},
    "amp": {0.7: 36.79},
}
PAPER_ATTACK = {
    "standard": "91.40 -> 17.50; random 90.63",
    "adversarial_0.25": "(beta 0.1) 91.97 -> 78.41",
}
NAMES = {
    "standard": "standard",
    "dropout": "dropout 0.3",
    "forward_noise_0.3": "forward noise 0.3",
    "adversarial_0.25": "adversarial beta 0.25",
    "forward_noise_0.3+adversarial_0.1": "forward noise 0.3 + adversarial beta 0.1",
    "awp": "AWP gamma 0.1",
    "amp": "AMP epsilon 0.5",
}


def pct(x: float) -> str:
    return f"{100 * x:.2f}"


def over_seeds(values: list[float]) -> str:
    """One seed: the value in %; several: mean ± sample std over seeds {n seeds}."""
    if len(values) == 1:
        return pct(values[0])
    return f"{pct(statistics.mean(values))} ± {pct(statistics.stdev(values))} {{{len(values)}}}"


def main(folders: list[Path]) -> None:
    first = folders[0] / "results.json"
    config = json.loads(first.read_text())["config"] if first.exists() else None
    jobs = []
    for folder in folders:
        for path in sorted((folder / "jobs").glob("*.json")):
            record = json.loads(path.read_text())  # an attack job holds a list (one per zeta)
            jobs.extend(record if isinstance(record, list) else [record])
    sweep: dict[tuple[str, float], list[dict]] = defaultdict(list)
    attacks: dict[str, list[dict]] = defaultdict(list)
    scapes: dict[str, list[dict]] = defaultdict(list)
    for j in jobs:
        if "accuracy" in j and "level" in j:
            sweep[j["method"], j["level"]].append(j)
        elif "attacked_accuracy" in j and j["zeta"] == 0.1:
            attacks[j["method"]].append(j)
        elif "flatness" in j:
            scapes[j["method"]].append(j)
    order = [m for m in NAMES if any(k[0] == m for k in sweep) or m in attacks]
    levels = sorted({k[1] for k in sweep})
    if config is not None:
        levels = sorted(float(x) for x in config["levels"])

    print("| method | " + " | ".join(f"zeta={z:g}" for z in levels) + " |")
    print("|---" * (len(levels) + 1) + "|")
    for m in order:
        cells = []
        for z in levels:
            runs = sweep.get((m, z), [])
            paper = PAPER.get(m, {}).get(z)
            if not runs:
                cell = "-"
            elif z == 0:
                cell = over_seeds([r["clean_accuracy"] for r in runs])
            elif len(runs) == 1:
                a = runs[0]["accuracy"]
                cell = f"{pct(a['mean'])} ± {pct(a['std'])} ({pct(a['min'])})"
            else:
                worst = min(r["accuracy"]["min"] for r in runs)
                cell = f"{over_seeds([r['accuracy']['mean'] for r in runs])} ({pct(worst)})"
            if paper is not None:
                cell += f" [{paper:.2f}]"
            cells.append(cell)
        print(f"| {NAMES[m]} | " + " | ".join(cells) + " |")

    print()
    print(
        "| method | clean | attacked | random mismatch, same zeta "
        "| paper (clean -> attacked; random) |"
    )
    print("|---|---|---|---|---|")
    for m in order:
        runs = attacks.get(m)
        if not runs:
            continue
        clean = over_seeds([a["clean_accuracy"] for a in runs])
        attacked = over_seeds([a["attacked_accuracy"] for a in runs])
        if len(runs) == 1:
            r = runs[0]["random_accuracy"]
            random = f"{pct(r['mean'])} ± {pct(r['std'])}"
        else:
            random = over_seeds([a["random_accuracy"]["mean"] for a in runs])
        print(f"| {NAMES[m]} | {clean} | {attacked} | {random} | {PAPER_ATTACK.get(m, '')} |")

    print()
    print("| method | clean loss | flatness (loss rise) |")
    print("|---|---|---|")
    for m in order:
        runs = scapes.get(m)
        if runs:
            loss = statistics.mean(s["clean_loss"] for s in runs)
            flat = statistics.mean(s["flatness"] for s in runs)
            print(f"| {NAMES[m]} | {loss:.4f} | {flat:.4f} |")


if __name__ == "__main__":
    main([Path(arg) for arg in sys.argv[1:]] or [Path("runs/buechel2022-full")])

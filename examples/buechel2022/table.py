"""Print the README tables of a Buechel 2022 run: accuracy under mismatch beside the paper's
Table 1, the targeted attack, flatness.

    python examples/buechel2022/table.py runs/buechel2022-full [runs/buechel2022-full-extra ...]

Reads the run folders' jobs/*.json (so it works on a run still in progress: missing cells
print as "-"); several folders (runs of the same config with other methods) make one table.
Cells: mean ± std (min) test accuracy over the transfers, in %, [paper value].
"""

from __future__ import annotations

import json
import sys
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


def main(folders: list[Path]) -> None:
    first = folders[0] / "results.json"
    config = json.loads(first.read_text())["config"] if first.exists() else None
    jobs = []
    for folder in folders:
        for path in sorted((folder / "jobs").glob("*.json")):
            record = json.loads(path.read_text())  # an attack job holds a list (one per zeta)
            jobs.extend(record if isinstance(record, list) else [record])
    sweep = {(j["method"], j["level"]): j for j in jobs if "accuracy" in j and "level" in j}
    attacks = {j["method"]: j for j in jobs if "attacked_accuracy" in j and j["zeta"] == 0.1}
    scapes = {j["method"]: j for j in jobs if "flatness" in j}
    order = [m for m in NAMES if any(k[0] == m for k in sweep) or m in attacks]
    levels = sorted({k[1] for k in sweep})
    if config is not None:
        levels = sorted(float(x) for x in config["levels"])

    print("| method | " + " | ".join(f"zeta={z:g}" for z in levels) + " |")
    print("|---" * (len(levels) + 1) + "|")
    for m in order:
        cells = []
        for z in levels:
            job = sweep.get((m, z))
            paper = PAPER.get(m, {}).get(z)
            if job is None:
                cell = "-"
            elif z == 0:
                cell = pct(job["clean_accuracy"])
            else:
                a = job["accuracy"]
                cell = f"{pct(a['mean'])} ± {pct(a['std'])} ({pct(a['min'])})"
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
        a = attacks.get(m)
        if a is None:
            continue
        r = a["random_accuracy"]
        print(
            f"| {NAMES[m]} | {pct(a['clean_accuracy'])} | {pct(a['attacked_accuracy'])} | "
            f"{pct(r['mean'])} ± {pct(r['std'])} | {PAPER_ATTACK.get(m, '')} |"
        )

    print()
    print("| method | clean loss | flatness (loss rise) |")
    print("|---|---|---|")
    for m in order:
        s = scapes.get(m)
        if s is not None:
            print(f"| {NAMES[m]} | {s['clean_loss']:.4f} | {s['flatness']:.4f} |")


if __name__ == "__main__":
    main([Path(arg) for arg in sys.argv[1:]] or [Path("runs/buechel2022-full")])

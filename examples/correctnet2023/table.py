"""Print the CorrectNet reproduction tables from the folders run.sh and run_extra.sh wrote.

usage: python examples/correctnet2023/table.py runs/correctnet2023
One table per (part, sigma); accuracy under noise is the mean over the transfers (the same
chips for every row of a table), "% of noise-free" divides it by that row's clean accuracy and
"% of standard's noise-free" by the standard model's (the paper's "original accuracy").
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

BASES = {
    "standard": "standard",
    "noise_injection": "noise injection",
    "lipschitz": "lipschitz",
    "lipschitz-noise": "lipschitz + noise injection",
    "noise_injection_0.7_e15": "noise injection at sigma 0.7, 15 epochs",
    "lipschitz-noise_0.7_e15": "lipschitz + noise injection at sigma 0.7, 15 epochs",
}
SEARCHES = {
    "rl": "compensation (RL)",
    "greedy": "compensation (greedy)",
    "exhaustive": "compensation (exhaustive)",
    "given": "compensation (given layers)",
}
HEADER = [
    "column",
    "noise-free %",
    "under noise % (mean)",
    "min %",
    "% of noise-free",
    "% of standard's noise-free",
    "extra params %",
    "extra MACs %",
    "layers",
    "placements evaluated",
]


def pct(x: float) -> str:
    return f"{100 * x:.2f}"


def base_rows(label: str, res: dict, original: float | None) -> list[list[str]]:
    """The uncompensated row of one results.json, then one row per placement search.

    original: the standard model's noise-free accuracy (the paper's "original accuracy").
    """
    clean = pct(res["clean_accuracy"])
    label = f"{label} ({res['transfers']} transfers)" if label == "standard" else label

    def row(name: str, acc: dict, relative: float) -> list[str]:
        of_original = "-" if original is None else f"{100 * acc['mean'] / original:.1f}"
        return [name, clean, pct(acc["mean"]), pct(acc["min"]), f"{100 * relative:.1f}"] + [
            of_original
        ]

    rows = [row(label, res["uncompensated"]["accuracy"], res["uncompensated"]["relative"])]
    rows[0] += ["-", "-", "-", "-"]
    for key, placed in res["placements"].items():
        cost = placed["overhead"]
        rows.append(
            row(f"{label} + {SEARCHES.get(key, key)}", placed["accuracy"], placed["relative"])
            + [f"{cost['params_percent']:.2f}", f"{cost['macs_percent']:.2f}"]
            + [",".join(placed["layers"]) or "none", str(placed.get("evaluations", "-"))]
        )
    return rows


def tables(part: Path) -> dict[float, list[list[str]]]:
    """sigma -> rows, bases in BASES order (folder 'name' or 'name-s<sigma>')."""
    found: dict[float, list[tuple[int, str, dict]]] = {}
    for path in sorted(part.glob("*/results.json")):
        name = path.parent.name.split("-s")[0]
        if name not in BASES:
            continue
        res = json.loads(path.read_text())
        found.setdefault(res["level"], []).append((list(BASES).index(name), name, res))
    out = {}
    for level, groups in sorted(found.items(), reverse=True):
        original = next((r["clean_accuracy"] for _, n, r in groups if n == "standard"), None)
        out[level] = [
            row
            for _, name, res in sorted(groups, key=lambda g: g[0])
            for row in base_rows(BASES[name], res, original)
        ]
    return out


def main(root: str) -> None:
    for part in sorted(p for p in Path(root).iterdir() if p.is_dir()):
        wall = " ".join(p.read_text().strip() for p in sorted(part.glob("wall*.txt")))
        print(f"\n## {part.name}  ({wall})")
        for level, rows in tables(part).items():
            print(f"\nlog-normal sigma {level}")
            print("| " + " | ".join(HEADER) + " |")
            print("|" + "---|" * len(HEADER))
            for row in rows:
                print("| " + " | ".join(row) + " |")


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "runs/correctnet2023")

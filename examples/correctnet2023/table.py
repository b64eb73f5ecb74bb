"""Print the CorrectNet reproduction tables from the folders run.sh and run_extra.sh wrote.

usage: python examples/correctnet2023/table.py runs/correctnet2023
One table per (part, sigma); accuracy under noise is the mean over the transfers (the same
chips for every row of a table), and "% of noise-free" divides it by that row's clean accuracy.
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
    "extra params %",
    "extra MACs %",
    "layers",
    "placements evaluated",
]


def pct(x: float) -> str:
    return f"{100 * x:.2f}"


def base_rows(label: str, res: dict) -> list[list[str]]:
    """The uncompensated row of one results.json, then one row per placement search."""
    acc = res["uncompensated"]["accuracy"]
    clean = pct(res["clean_accuracy"])
    label = f"{label} ({res['transfers']} transfers)" if label == "standard" else label
    rows = [
        [label, clean, pct(acc["mean"]), pct(acc["min"])]
        + [f"{100 * res['uncompensated']['relative']:.1f}", "-", "-", "-", "-"]
    ]
    for key, row in res["placements"].items():
        cost = row["overhead"]
        rows.append(
            [f"{label} + {SEARCHES.get(key, key)}", clean, pct(row["accuracy"]["mean"])]
            + [pct(row["accuracy"]["min"]), f"{100 * row['relative']:.1f}"]
            + [f"{cost['params_percent']:.2f}", f"{cost['macs_percent']:.2f}"]
            + [",".join(row["layers"]) or "none", str(row.get("evaluations", "-"))]
        )
    return rows


def tables(part: Path) -> dict[float, list[list[str]]]:
    """sigma -> rows, bases in BASES order (folder 'name' or 'name-s<sigma>')."""
    found: dict[float, list[tuple[int, list[list[str]]]]] = {}
    for path in sorted(part.glob("*/results.json")):
        name = path.parent.name.split("-s")[0]
        if name not in BASES:
            continue
        res = json.loads(path.read_text())
        order = list(BASES).index(name)
        found.setdefault(res["level"], []).append((order, base_rows(BASES[name], res)))
    return {
        level: [row for _, rows in sorted(groups, key=lambda g: g[0]) for row in rows]
        for level, groups in sorted(found.items(), reverse=True)
    }


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

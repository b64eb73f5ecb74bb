"""Element-by-element re-implementations of the crossbar mapping and its deterministic effects.

Written from the formulas of Drolet et al. 2023 (methods.md section 3) with plain Python loops
and floats, sharing no code with noiseproof.noise.mapping / crossbar.
"""

from __future__ import annotations


def window(r_lrs_ohm: float = 2e3, r_hrs_ohm: float = 1e4) -> tuple[float, float]:
    """(G_min, G_max) in uS: 1/R_HRS and 1/R_LRS."""
    return 1e6 / r_hrs_ohm, 1e6 / r_lrs_ohm


def differential_pair(
    weights: list[float], g_min: float, g_max: float, scale: float | None = None
) -> list[tuple[float, float]]:
    """(G+, G-) per weight: w+ = max(w, 0), w- = max(-w, 0), each mapped [0, scale] -> window."""
    top = max(abs(w) for w in weights) if scale is None else scale
    out = []
    for w in weights:
        pos, neg = max(w, 0.0), max(-w, 0.0)
        frac_pos = pos / top if top > 0 else 0.0
        frac_neg = neg / top if top > 0 else 0.0
        out.append((g_min + (g_max - g_min) * frac_pos, g_min + (g_max - g_min) * frac_neg))
    return out


def weights_from_pairs(
    pairs: list[tuple[float, float]], g_min: float, g_max: float, scale: float
) -> list[float]:
    """w = (G+ - G-) * scale / (G_max - G_min) per pair."""
    return [(gp - gn) * scale / (g_max - g_min) for gp, gn in pairs]


def series_segments(rows: int, cols: int) -> list[list[int]]:
    """Wire segments per crossbar cell [row][col]: (col + 1) along its row + (rows - row) down."""
    return [[(c + 1) + (rows - r) for c in range(cols)] for r in range(rows)]


def programming_order_cells_after(out_features: int, in_features: int) -> list[list[int]]:
    """cells_after[o][i] for a [out, in] weight on a crossbar with inputs on rows.

    Cells are programmed row by row (input i), column by column (output o) within a row; a
    cell's count is how many cells come after it.
    """
    total = out_features * in_features
    counts = [[0] * in_features for _ in range(out_features)]
    position = 0
    for i in range(in_features):
        for o in range(out_features):
            counts[o][i] = total - 1 - position
            position += 1
    return counts

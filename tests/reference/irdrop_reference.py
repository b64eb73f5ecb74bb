"""IR drop in a crossbar tile, written out independently of noiseproof.irdrop.

Hand-solved small networks (series and parallel resistors only), a dense nodal analysis built
node by node with plain loops, and one Linear layer computed tile by tile from the exact
solver's currents. The circuit is noiseproof.irdrop's: rows driven at their left end through
one wire segment, devices between row node (i, j) and column node (i, j), columns ending
through one segment in a virtual ground below the last row; currents in uA, conductances in uS.
"""

from __future__ import annotations

import numpy as np


def one_by_one(g_us: float, v: float, r: float) -> float:
    """The 1x1 tile: driver, one segment, the device, one segment, ground in series:
    I = V / (2r + 1/G)."""
    return v / (2 * r + 1e6 / g_us) * 1e6


def two_by_two_one_row(g0_us: float, g1_us: float, v: float, r: float, row: int) -> list[float]:
    """A 2x2 tile whose only devices are on row `row` (the other row's are 0), that row driven
    at v: series-parallel. From the row's node a = (row, 0): the device to column 0 and the
    column wire below it to ground, R_a = 1/G0 + (2 - row) r; on to node b = (row, 1) through
    one segment and down column 1, R_b = r + 1/G1 + (2 - row) r. With R_p = R_a || R_b the node
    a sits at V_a = v R_p / (r + R_p), and I_0 = V_a / R_a, I_1 = V_a / R_b."""
    below = (2 - row) * r
    r_a = 1e6 / g0_us + below
    r_b = r + 1e6 / g1_us + below
    r_p = r_a * r_b / (r_a + r_b)
    v_a = v * r_p / (r + r_p)
    return [v_a / r_a * 1e6, v_a / r_b * 1e6]


def dense_nodal(g_us: list[list[float]], v: list[float], r: float) -> list[float]:
    """Column currents (uA) by nodal analysis written node by node: a dense 2RC x 2RC matrix,
    Kirchhoff's current law at every row node (i, j) (index i C + j) and column node (index
    R C + i C + j), numpy.linalg.solve."""
    rows, cols = len(g_us), len(g_us[0])
    n = rows * cols
    gw = 1.0 / r
    a = np.zeros((2 * n, 2 * n))
    b = np.zeros(2 * n)

    def connect(p: int, q: int | None, g: float) -> None:
        """Conductance g between nodes p and q (q None: to a fixed potential, handled apart)."""
        a[p, p] += g
        if q is not None:
            a[q, q] += g
            a[p, q] -= g
            a[q, p] -= g

    for i in range(rows):
        for j in range(cols):
            row_node, col_node = i * cols + j, n + i * cols + j
            if j == 0:
                connect(row_node, None, gw)  # the driver at v[i]
                b[row_node] += gw * v[i]
            else:
                connect(row_node - 1, row_node, gw)
            connect(row_node, col_node, g_us[i][j] * 1e-6)
            if i == rows - 1:
                connect(col_node, None, gw)  # the virtual ground at 0 V
            else:
                connect(col_node, col_node + cols, gw)
    nodes = np.linalg.solve(a, b)
    return [gw * nodes[n + (rows - 1) * cols + j] * 1e6 for j in range(cols)]


def linear_with_ir_drop(
    weight: np.ndarray,
    bias: np.ndarray,
    x: np.ndarray,
    window: tuple[float, float],
    tile: tuple[int, int],
    currents,
    v_read: float = 0.2,
) -> np.ndarray:
    """y = W x + b of a Linear layer on crossbar tiles with IR drop, input by input, tile by
    tile: the array A = W^T on differential pairs (scale max|A|, edge tiles padded with G_min),
    each input scaled to voltages v = v_read x / max|x|, each tile's currents
    `currents(g_us [R, C], v [R]) -> [C]` (uA) of both devices subtracted, mapped back by
    max|A| / ((G_max - G_min) v_read) and summed over the tile rows, times max|x|, plus b."""
    g_min, g_max = window
    rows, cols = tile
    array = weight.T.astype(np.float64)
    n_in, n_out = array.shape
    grid = -(-n_in // rows), -(-n_out // cols)
    padded = np.zeros((grid[0] * rows, grid[1] * cols))
    padded[:n_in, :n_out] = array
    scale = np.abs(array).max()
    span = g_max - g_min
    g_plus = g_min + span * np.clip(padded, 0, None) / scale
    g_minus = g_min + span * np.clip(-padded, 0, None) / scale
    out = np.zeros((len(x), n_out))
    for k, vector in enumerate(x.astype(np.float64)):
        alpha = np.abs(vector).max() or 1.0
        v = np.zeros(grid[0] * rows)
        v[:n_in] = v_read * vector / alpha
        y = np.zeros(grid[1] * cols)
        for a in range(grid[0]):
            for c in range(grid[1]):
                part = slice(a * rows, (a + 1) * rows), slice(c * cols, (c + 1) * cols)
                drive = v[a * rows : (a + 1) * rows]
                diff = np.asarray(currents(g_plus[part], drive)) - currents(g_minus[part], drive)
                y[c * cols : (c + 1) * cols] += diff * scale / (span * v_read)
        out[k] = alpha * y[:n_out] + bias
    return out

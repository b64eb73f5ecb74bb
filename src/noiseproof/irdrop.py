"""IR drop: the resistance of the wires of a crossbar tile, solved as a resistor network.

**The circuit of one tile** of R rows x C columns (rows are inputs, columns outputs, y = x A, as
`noiseproof export` lays tiles out). Every wire segment has the same resistance r (Ohm), the
`wire_resistance_ohm` of `forward.ir_drop`; devices are linear conductances G[i, j] >= 0 (uS).

- Row i is driven by an ideal voltage source V_i at its left end. Its wire is a chain of C
  segments: the first between the driver and row node (i, 0), the next between (i, 0) and
  (i, 1), ..., the last ending at (i, C-1); the right end is open.
- Device G[i, j] connects row node (i, j) to column node (i, j).
- Column j's wire is a chain of R segments: between column nodes (0, j) and (1, j), ...,
  (R-2, j) and (R-1, j), and the last from (R-1, j) to a virtual ground (a sense amplifier
  holding 0 V) below row R-1; the top end (above row 0) is open.
- The output of column j is the current into its virtual ground, I_j = V_col(R-1, j) / r.
- Nothing else: no driver or sense-amplifier resistance, no access transistor, no sneak paths
  through unselected rows (every row is driven, an unused one at 0 V), no device I-V
  nonlinearity. The network is linear, so I = V M for an effective conductance matrix M
  (R x C, uS) of the tile; r = 0 gives M = G, the ideal I = G^T V.

Kirchhoff's laws written with the device currents X[i, j] = G[i, j] (U[i, j] - W[i, j])
(U: row node voltages, W: column node voltages): the current in row segment k (k = 0 is the
driver's) is sum_{m >= k} X[i, m], in column segment k (below row k) sum_{m <= k} X[m, j], so

    U[i, j] = V_i - r sum_{k <= j} sum_{m >= k} X[i, m],
    W[i, j] = r sum_{k >= i} sum_{m <= k} X[m, j],      I_j = sum_i X[i, j].

**Two solvers.**

`NodalTile` / `exact_currents` (the reference): nodal analysis of the whole network, 2RC
unknowns (every row and column node), one sparse symmetric positive definite system
(conductance stamps; the driver and the virtual ground enter as fixed potentials), factorised
once by SuperLU (`scipy.sparse.linalg.splu`) and solved for a batch of input vectors.

`effective_conductance` (fast, torch; batched over tiles and chips; differentiable): M by block
elimination of the same nodal system, exact up to rounding. Eliminating the row nodes of row i
(a tridiagonal system, T_i = K + diag(g_i), K the row wire's chain with the driver end fixed)
leaves the column nodes W_i of that row with the admittance Y_i = G_i - G_i T_i^-1 G_i and
the injected current V_i h_i, h_i = G_i T_i^-1 e_0 / r. The column wires then make the
block-tridiagonal system (Y_i + d_i/r) W_i - (W_{i-1} + W_{i+1})/r = V_i h_i (d_0 = 1, else
2; W_R = 0 is the ground), eliminated from the top: S_0 = Y_0 + 1/r, S_i = Y_i + 2/r -
S_{i-1}^-1 / r^2, carrying all R unit inputs at once, and I = W_{R-1} / r. T_i^-1 comes in
closed form from the tridiagonal's forward and backward pivots (T^-1[m, m] = 1/(delta_m +
eta_m - a_m), each step away from the diagonal a factor (1/r)/delta; G. Meurant, "A review on
the inverse of symmetric tridiagonal and block tridiagonal matrices", SIAM J. Matrix Anal.
Appl. 13(3), 1992). Cost: R Cholesky factorisations
and inverses of C x C matrices plus the carried inputs, ~R C^3 + R^2 C^2 flops per tile in
float64; memory O(C^2 + R C) per tile (autograd keeps O(R C^2)). Each inference is then one
matrix product, I = V M, as the ideal one.

Measured (docs/device-physics.md, "IR drop"; `python benchmarks/ir_drop.py`): against the exact
solver, the largest relative error over all output currents is 1.3e-12 on 64x64 and 256x256
tiles at 1, 2.5 and 5 Ohm per segment; M of a 256x256 tile takes ~0.5 s on one CPU core. Also
tried, and slower for the same M: sparse LU with R right-hand sides (4.3 s), and conjugate
gradients on the device-current form of the system, (diag(1/G) + r (P_row + P_col)) X = V
(20 s; P_row, P_col: the wires' Green's functions, two cumulative sums each).

**Other simulators' conventions** (from their documentation; none of their code is used here).
Where the terminals sit and what resistance they add move single output currents by a few
percent against this circuit on a 64x64 tile (more on larger ones; the benchmark's
`conventions` section measures it):

- CrossSim (Sandia; `xbar.array.parasitics`): separate `Rp_row`, `Rp_col` per segment,
  normalised by the device's Rmin; optional series resistance at the line terminals
  (`Rp_row_terminal`, `Rp_col_terminal`); positive and negative devices of a pair either in
  separate arrays subtracted in the periphery or interleaved on one summation line, where
  their currents cancel along the wire; an iterative circuit solver (convergence threshold and
  iteration cap); summation lines held at virtual ground.
- MemTorch (`source_resistance`, `line_resistance`, passive tiles): the crossbar model of A.
  Chen, "A comprehensive crossbar array model with solutions for line resistance and nonlinear
  device characteristics" (IEEE TED 60(4), 2013), solved by sparse LU; a source resistance
  between the voltage sources and the lines as well as the line resistance per segment.
- NeuroSim (Yu group; `wireResistanceRow`, `wireResistanceCol`): no network solve; each cell
  is read in series with the wire between it and the periphery, 1/G + (j + 1) r_row +
  (R - i) r_col (+ the access transistor), cells independent of each other (the first-order
  model of `tio2_crossbar`'s `line_resistance` here). It ignores the other cells' currents in
  the same wires, so on a busy tile it misses most of the drop: 3.5 % off this circuit on a
  64x64 tile at 1 Ohm, where the ideal product is 3.6 % off.

Units: conductances in uS, resistances in Ohm, voltages in V, currents in uA (V x uS).
"""

from __future__ import annotations

import math

import numpy as np
import torch
from torch import Tensor

MAX_TILE = 1024
"""Largest tile side `forward.ir_drop` accepts: the fast solver costs ~R C^3 flops per tile
(on one CPU core about 0.5 s for 256x256, 7 s for 512x512, minutes for 1024x1024)."""

_CHUNK_ELEMENTS = 1 << 22
"""Tiles solved together by `effective_weights`: as many as keep a C x max(R, C) float64 block
per tile within this many elements (32 MiB), so a large layer does not hold all its tiles'
working matrices at once."""


def check_wire_resistance(wire_ohm: float) -> float:
    """`wire_ohm` as a float; ValueError unless it is a finite number >= 0."""
    if isinstance(wire_ohm, bool) or not isinstance(wire_ohm, int | float):
        raise TypeError(f"wire_ohm must be a number (Ohm), got {type(wire_ohm).__name__}")
    if not (math.isfinite(wire_ohm) and wire_ohm >= 0):
        raise ValueError(f"wire_ohm must be finite and >= 0 (Ohm per segment), got {wire_ohm!r}")
    return float(wire_ohm)


def _check_conductances(g: Tensor | np.ndarray, name: str = "conductance_us") -> None:
    if g.ndim < 2 or g.shape[-1] < 1 or g.shape[-2] < 1:
        raise ValueError(
            f"{name} must be [..., rows, cols] with rows, cols >= 1, got {tuple(g.shape)}"
        )
    finite = bool(np.isfinite(g).all()) if isinstance(g, np.ndarray) else bool(g.isfinite().all())
    if not finite or bool((g < 0).any()):
        raise ValueError(f"{name} must hold finite conductances >= 0 (uS)")


class NodalTile:
    """The exact solver: one tile's full resistor network by nodal analysis (module docstring).

    Unknowns: the 2RC node voltages, row node (i, j) at index i C + j, column node (i, j) at
    R C + i C + j. Each conductance g between nodes a, b adds g to A[a, a] and A[b, b] and -g
    to A[a, b] and A[b, a]; the driver of row i adds 1/r to A[(i, 0), (i, 0)] and V_i / r to
    the right-hand side, the virtual ground 1/r to A[(R-1, j), (R-1, j)] of each column node.
    A is symmetric positive definite; its LU factorisation (SuperLU, minimum-degree ordering on
    A + A^T) is made once and reused for every batch of inputs.
    """

    def __init__(self, conductance_us: np.ndarray, wire_ohm: float) -> None:
        import scipy.sparse as sparse
        from scipy.sparse.linalg import splu

        g = np.asarray(conductance_us, dtype=np.float64)
        if g.ndim != 2:
            raise ValueError(f"conductance_us must be [rows, cols], got shape {g.shape}")
        _check_conductances(g)
        self.wire_ohm = check_wire_resistance(wire_ohm)
        self.conductance_us = g
        self.rows, self.cols = g.shape
        self._lu = None
        if self.wire_ohm == 0:
            return
        rows, cols = g.shape
        n = rows * cols
        node = np.arange(n).reshape(rows, cols)
        wire = 1.0 / self.wire_ohm
        pairs = [
            (node[:, :-1].ravel(), node[:, 1:].ravel(), np.full(rows * (cols - 1), wire)),
            (n + node[:-1].ravel(), n + node[1:].ravel(), np.full((rows - 1) * cols, wire)),
            (node.ravel(), n + node.ravel(), g.ravel() * 1e-6),
        ]
        a, b, value = (np.concatenate(part) for part in zip(*pairs, strict=True))
        diagonal = np.zeros(2 * n)
        np.add.at(diagonal, a, value)
        np.add.at(diagonal, b, value)
        diagonal[node[:, 0]] += wire  # the drivers
        diagonal[n + node[-1]] += wire  # the virtual grounds
        index = np.arange(2 * n)
        matrix = sparse.coo_matrix(
            (
                np.concatenate([diagonal, -value, -value]),
                (np.concatenate([index, a, b]), np.concatenate([index, b, a])),
            ),
            shape=(2 * n, 2 * n),
        ).tocsc()
        self._lu = splu(matrix, permc_spec="MMD_AT_PLUS_A")
        self._node = node

    def currents(self, voltages: np.ndarray) -> np.ndarray:
        """Column currents (uA) [batch, cols] for input voltages (V) [batch, rows] (or [rows])."""
        v = np.asarray(voltages, dtype=np.float64)
        single = v.ndim == 1
        v = np.atleast_2d(v)
        if v.ndim != 2 or v.shape[1] != self.rows:
            raise ValueError(f"voltages must be [batch, {self.rows}], got shape {v.shape}")
        if not np.isfinite(v).all():
            raise ValueError("voltages must be finite")
        if self._lu is None:  # r = 0: the ideal crossbar
            out = v @ self.conductance_us
        else:
            n, wire = self.rows * self.cols, 1.0 / self.wire_ohm
            rhs = np.zeros((2 * n, v.shape[0]))
            rhs[self._node[:, 0]] = wire * v.T
            nodes = self._lu.solve(rhs)
            out = (wire * nodes[n + self._node[-1]]).T * 1e6
        return out[0] if single else out


def exact_currents(conductance_us: np.ndarray, voltages: np.ndarray, wire_ohm: float) -> np.ndarray:
    """Column currents (uA) of one tile [rows, cols] for input voltages (V) [batch, rows], by
    nodal analysis of the full network (`NodalTile`; r = 0: the ideal V G)."""
    return NodalTile(conductance_us, wire_ohm).currents(voltages)


def _row_pivots(g: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """Per row of the tile, for T = K + diag(g) in units of 1/r (K: the row wire's chain, the
    driver end held, the far end open): (diagonal of T^-1, cumulative log-ratios lcum with
    T^-1[j, m] = diag[max(j, m)] exp(-|lcum[m] - lcum[j]|), and a = the diagonal of T)."""
    cols = g.shape[-1]
    chain = torch.full((cols,), 2.0, dtype=g.dtype, device=g.device)
    chain[-1] = 1.0
    a = chain + g
    forward = [a[..., 0]]
    for j in range(1, cols):
        forward.append(a[..., j] - 1.0 / forward[-1])
    backward = [a[..., -1]]
    for j in range(cols - 2, -1, -1):
        backward.append(a[..., j] - 1.0 / backward[-1])
    delta, eta = torch.stack(forward, -1), torch.stack(backward[::-1], -1)
    diag = 1.0 / (delta + eta - a)
    steps = -torch.log(delta)  # log((1/r) / delta) in units of 1/r; <= 0 since delta >= 1
    lcum = torch.cat([torch.zeros_like(steps[..., :1]), steps.cumsum(-1)[..., :-1]], -1)
    return diag, lcum, a


def _row_inverse(diag: Tensor, lcum: Tensor) -> Tensor:
    """T^-1 [..., C, C] of one row from `_row_pivots` (symmetric, entries > 0)."""
    cols = diag.shape[-1]
    upper = torch.ones(cols, cols, dtype=torch.bool, device=diag.device).triu()
    at_max = torch.where(upper, diag.unsqueeze(-2), diag.unsqueeze(-1))
    return at_max * torch.exp(-(lcum.unsqueeze(-2) - lcum.unsqueeze(-1)).abs())


def effective_conductance(conductance_us: Tensor, wire_ohm: float) -> Tensor:
    """M (uS) with I = V M exactly for tiles of conductances [..., R, C] (uS) and wire
    resistance `wire_ohm` per segment: the fast solver (block elimination, module docstring).

    Batched over the leading dimensions (tiles, chips), on the tensor's device, in float64
    (the result in the input's dtype), differentiable in the conductances (autograd through
    the elimination). r = 0 returns the conductances themselves (M = G).
    """
    if not isinstance(conductance_us, Tensor):
        raise TypeError(f"conductance_us must be a tensor, got {type(conductance_us).__name__}")
    r = check_wire_resistance(wire_ohm)
    _check_conductances(conductance_us.detach())
    if r == 0:
        return conductance_us
    g = conductance_us.to(torch.float64) * (r * 1e-6)  # conductances in units of 1/r
    rows, cols = g.shape[-2:]
    diag, lcum, _ = _row_pivots(g)
    eye = torch.eye(cols, dtype=g.dtype, device=g.device)

    def row(i: int) -> tuple[Tensor, Tensor]:
        """(Y_i, h_i) of row i, in units of 1/r."""
        inverse = _row_inverse(diag[..., i, :], lcum[..., i, :])
        gi = g[..., i, :]
        admittance = torch.diag_embed(gi) - gi.unsqueeze(-1) * inverse * gi.unsqueeze(-2)
        return admittance, gi * inverse[..., :, 0]

    admittance, injected = row(0)
    schur = admittance + eye
    carried = injected.unsqueeze(-1)  # [..., C, inputs so far]
    for i in range(1, rows):
        schur_inverse = torch.cholesky_inverse(torch.linalg.cholesky(schur))
        admittance, injected = row(i)
        carried = torch.cat([schur_inverse @ carried, injected.unsqueeze(-1)], -1)
        schur = admittance + 2 * eye - schur_inverse
    bottom = torch.cholesky_solve(carried, torch.linalg.cholesky(schur))  # W_{R-1} per input
    return (bottom.transpose(-1, -2) * (1e6 / r)).to(conductance_us.dtype)


def tile_currents(conductance_us: Tensor, voltages: Tensor, wire_ohm: float) -> Tensor:
    """Column currents (uA) [..., batch, C] of tiles [..., R, C] (uS) for input voltages (V)
    [..., batch, R]: V M with M = `effective_conductance` (one matrix product per inference)."""
    return voltages @ effective_conductance(conductance_us, wire_ohm).to(voltages.dtype)


def effective_weights(
    matrix: Tensor,
    window: tuple[float, float],
    tile: tuple[int, int],
    wire_ohm: float,
) -> Tensor:
    """The array A [inputs, outputs] as its crossbar tiles compute it with IR drop.

    A is mapped onto differential pairs with its scale max|A| over the window (G_min, G_max)
    (uS), G+ = G_min + (G_max - G_min) max(a, 0) / max|A|, G- likewise for max(-a, 0), and cut
    into tiles of `tile` = (rows, cols) weights as `noiseproof export` lays them out (edge tiles
    padded with G+ = G- = G_min on rows driven at 0 V and columns not read). Every device of a
    pair sits on its own tile of the same layout (two crossbars per tile position). The
    effective array is (M+ - M-) max|A| / (G_max - G_min) per tile (M: `effective_conductance`),
    so x A_eff is the difference of the two tiles' IR-dropped currents mapped back to weight
    units, summed over a column of tiles digitally. r = 0 returns A itself. Differentiable.
    """
    if matrix.dim() != 2:
        raise ValueError(f"matrix must be [inputs, outputs], got shape {tuple(matrix.shape)}")
    g_min, g_max = (float(g) for g in window)
    if not (math.isfinite(g_min) and math.isfinite(g_max) and 0 <= g_min < g_max):
        raise ValueError(
            f"window must be finite (G_min, G_max) with 0 <= G_min < G_max, got {window}"
        )
    rows, cols = tile
    if min(rows, cols) < 1:
        raise ValueError(f"tile must be (rows, cols) >= 1, got {tile}")
    r = check_wire_resistance(wire_ohm)
    scale = matrix.abs().amax()
    if r == 0 or float(scale.detach()) == 0:
        return matrix
    n_in, n_out = matrix.shape
    grid = math.ceil(n_in / rows), math.ceil(n_out / cols)
    padded = torch.nn.functional.pad(matrix, (0, grid[1] * cols - n_out, 0, grid[0] * rows - n_in))
    span = g_max - g_min
    unit = padded / scale
    pairs = torch.stack([g_min + span * unit.clamp(min=0), g_min + span * (-unit).clamp(min=0)])
    tiles = pairs.reshape(2, grid[0], rows, grid[1], cols).transpose(2, 3).reshape(-1, rows, cols)
    per_chunk = max(1, _CHUNK_ELEMENTS // (cols * max(rows, cols)))
    solved = torch.cat([effective_conductance(part, r) for part in tiles.split(per_chunk)]).reshape(
        2, grid[0], grid[1], rows, cols
    )
    weights = (solved[0] - solved[1]) * (scale / span)
    return weights.transpose(1, 2).reshape(grid[0] * rows, grid[1] * cols)[:n_in, :n_out]

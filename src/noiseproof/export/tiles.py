"""Target conductances of a crossbar array, cut into tiles of a fixed size.

Every weight w of an array A is a differential pair of devices, min-max mapped with the
array's scale max|A| onto the device window [G_min, G_max] (noiseproof.noise.mapping,
Drolet et al. 2023):

    G+ = G_min + (G_max - G_min) max(w, 0) / max|A|,
    G- = G_min + (G_max - G_min) max(-w, 0) / max|A|,
    w  = (G+ - G-) max|A| / (G_max - G_min).

The array is cut into tiles of `rows` x `cols` weights (two devices each), tile (i, j) holding
array rows i*rows .. (i+1)*rows - 1 and columns j*cols .. (j+1)*cols - 1. Edge tiles are padded
to the full tile size with G+ = G- = G_min (weight 0, no current difference), so every tile
is one whole physical crossbar to program.

Size limit: an export holds at most MAX_PAIRS device pairs (positions of all its tiles, edge
padding included), checked by `check_export_size` from the shapes alone, before anything is
allocated or written. Each pair takes 16 bytes as float64 G+/G- targets (the npz files), about
47 bytes of CSV, and at most about 60 bytes of memory while its layer is written (measured on
a 2048x2048 layer; the CSV is written in blocks); 2^25 pairs are 512 MiB of targets, ~2.1 GB
of files, at most ~2 GB of memory, ~3 min on one core, and 512 crossbars of 256x256: several
times the largest analog chips built (IBM's 64-core chip has 64 of them).
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

from noiseproof.noise.base import NoiseModel
from noiseproof.noise.mapping import ConductanceMapping

_TILE = re.compile(r"\s*(\d+)\s*[xX]\s*(\d+)\s*")

MAX_PAIRS = 2**25
"""The most device pairs (tile positions, padding included) one export writes (module
docstring): 33,554,432 pairs, 512 MiB of float64 G+/G- targets."""
BYTES_PER_PAIR = 16
"""float64 G+ and G- of one pair: what the npz files hold."""


def parse_tile(text: str) -> tuple[int, int]:
    """'256x256' -> (256, 256): weight rows x columns of one crossbar tile (both >= 1)."""
    if not isinstance(text, str):
        raise TypeError(f"tile must be a string ROWSxCOLS, got {type(text).__name__}")
    match = _TILE.fullmatch(text)
    if not match or min(int(match[1]), int(match[2])) < 1:
        raise ValueError(
            f"tile must be ROWSxCOLS with positive integers (e.g. 256x256), got {text!r}"
        )
    return int(match[1]), int(match[2])


def padded_pairs(shape: tuple[int, int], tile: tuple[int, int]) -> int:
    """Device pairs in the tiles of an array of `shape` (rows, cols): whole tiles, edge tiles
    padded (exact integers, whatever the sizes)."""
    (n_rows, n_cols), (rows, cols) = shape, tile
    return math.ceil(n_rows / rows) * rows * math.ceil(n_cols / cols) * cols


def check_export_size(
    arrays: dict[str, tuple[int, int]], tile: tuple[int, int], source: str = "the arrays"
) -> None:
    """ValueError (one line: the numbers and the limit) when the tiles of the arrays (name ->
    (rows, cols)) would hold more than MAX_PAIRS device pairs; computed from the shapes, before
    any allocation. `source` names the arrays when they alone are too many."""
    weights = sum(rows * cols for rows, cols in arrays.values())
    pairs = sum(padded_pairs(shape, tile) for shape in arrays.values())
    limit = f"the limit of {MAX_PAIRS:,} pairs ({_size(MAX_PAIRS * BYTES_PER_PAIR)})"
    if weights > MAX_PAIRS:
        raise ValueError(
            f"{source} hold {weights:,} weights in all: over {limit} one export writes "
            "(docs/device-physics.md)"
        )
    if pairs > MAX_PAIRS:
        name, (rows, cols) = max(arrays.items(), key=lambda item: item[1][0] * item[1][1])
        raise ValueError(
            f"--tile {tile[0]}x{tile[1]}: the tiles would hold {pairs:,} device pairs "
            f"({_size(pairs * BYTES_PER_PAIR)} of G+/G- targets) for {weights:,} weights, "
            f"over {limit}: use smaller tiles (the largest array, {name}, is {rows}x{cols})"
        )


def _size(n_bytes: float) -> str:
    """Bytes in binary units: 536870912 -> '512 MiB'."""
    units = ("B", "KiB", "MiB", "GiB", "TiB", "PiB")
    k = 0
    while n_bytes >= 1024 and k < len(units) - 1:
        n_bytes, k = n_bytes / 1024, k + 1
    return f"{n_bytes:.4g} {units[k]}"


def conductance_window(noise: NoiseModel) -> tuple[float, float]:
    """(G_min, G_max) in uS of a noise model that maps weights onto conductances (its
    `conductance_window()` method); ValueError for one that does not, or a bad window."""
    window = getattr(noise, "conductance_window", None)
    name = getattr(noise, "registered_name", "") or type(noise).__name__
    if not callable(window):
        raise ValueError(f"noise model '{name}' does not map weights onto conductances")
    g_min, g_max = (float(g) for g in window())
    if not (math.isfinite(g_min) and math.isfinite(g_max) and 0 <= g_min < g_max):
        raise ValueError(
            f"noise model '{name}' has the conductance window ({g_min:g}, {g_max:g}) uS: "
            "need finite 0 <= G_min < G_max"
        )
    return g_min, g_max


@dataclass(frozen=True)
class TiledConductances:
    """One array's target conductances in tiles (uS, float64).

    g_plus, g_minus: [tile_rows, tile_cols, rows, cols], tile (i, j) at [i, j]; scale: max|A|
    of the mapping; shape: the array's own (unpadded) shape; window: (G_min, G_max).
    """

    g_plus: np.ndarray
    g_minus: np.ndarray
    scale: float
    shape: tuple[int, int]
    window: tuple[float, float]

    @property
    def used(self) -> tuple[list[int], list[int]]:
        """(rows used in each tile row, columns used in each tile column): less at the edge."""
        grid_rows, grid_cols, rows, cols = self.g_plus.shape
        return (
            [min(rows, self.shape[0] - i * rows) for i in range(grid_rows)],
            [min(cols, self.shape[1] - j * cols) for j in range(grid_cols)],
        )

    def padding(self) -> np.ndarray:
        """Bool [tile_rows, tile_cols, rows, cols]: True on the devices padding an edge tile."""
        grid_rows, grid_cols, rows, cols = self.g_plus.shape
        row = np.arange(grid_rows)[:, None, None, None] * rows + np.arange(rows)[:, None]
        col = np.arange(grid_cols)[None, :, None, None] * cols + np.arange(cols)
        return (row >= self.shape[0]) | (col >= self.shape[1])


def tile_conductances(
    matrix: Tensor, window: tuple[float, float], tile: tuple[int, int]
) -> TiledConductances:
    """Map the array `matrix` (rows = inputs, columns = outputs) onto differential pairs over
    `window` with its scale max|A|, and cut it into `tile` = (rows, cols) tiles, edge tiles
    padded with G_min (see the module docstring)."""
    if matrix.dim() != 2:
        raise ValueError(f"matrix must be 2-D (an array), got shape {tuple(matrix.shape)}")
    check_export_size({"matrix": (matrix.shape[0], matrix.shape[1])}, tile)
    rows, cols = tile
    mapping = ConductanceMapping(g_min_us=window[0], g_max_us=window[1], scheme="differential")
    target = mapping.to_conductance(matrix)
    assert target.negative is not None  # the differential scheme: two columns
    n_rows, n_cols = matrix.shape
    grid = (math.ceil(n_rows / rows), math.ceil(n_cols / cols))

    def cut(g: Tensor) -> np.ndarray:
        padded = torch.full((grid[0] * rows, grid[1] * cols), window[0], dtype=torch.float64)
        padded[:n_rows, :n_cols] = g
        return padded.reshape(grid[0], rows, grid[1], cols).permute(0, 2, 1, 3).numpy().copy()

    return TiledConductances(
        g_plus=cut(target.positive),
        g_minus=cut(target.negative),
        scale=float(target.scale),
        shape=(n_rows, n_cols),
        window=window,
    )

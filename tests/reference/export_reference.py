"""Reading a conductance export back into weights, from its manifest alone (numpy, plain loops
where it helps to read them): shares no code with noiseproof.export.

For every layer: the tiles [tile_row, tile_col, row, col] are put side by side into the full
padded array, cut to the array's shape, turned into weights w = (G+ - G-) * scale /
(g_max - g_min) (Drolet et al. 2023's differential pair), the bias row (if any) split off, and
the (in, out) array transposed back and reshaped to the tensor's shape.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np


def assemble(tiles: np.ndarray, rows: int, cols: int) -> np.ndarray:
    """The [tile_row, tile_col, r, c] tiles as one array, cut to `rows` x `cols`."""
    grid_rows, grid_cols, r, c = tiles.shape
    full = np.zeros((grid_rows * r, grid_cols * c))
    for i in range(grid_rows):
        for j in range(grid_cols):
            full[i * r : (i + 1) * r, j * c : (j + 1) * c] = tiles[i, j]
    return full[:rows, :cols]


def weights_from_export(folder: str | Path) -> dict[str, np.ndarray]:
    """{tensor name: float64 weights} of every exported tensor and bias (rows and digital)."""
    folder = Path(folder)
    manifest = json.loads((folder / "manifest.json").read_text())
    g_min, g_max = manifest["mapping"]["g_min_us"], manifest["mapping"]["g_max_us"]
    out = {}
    for layer in manifest["layers"]:
        with np.load(folder / layer["files"]["npz"]) as npz:
            plus, minus = npz["g_plus_us"], npz["g_minus_us"]
        rows, cols = layer["array_shape"]
        array = (assemble(plus, rows, cols) - assemble(minus, rows, cols)) * (
            layer["scale"] / (g_max - g_min)
        )
        bias = layer["bias"]
        if bias is not None and bias["handling"] == "row":
            out[bias["tensor"]] = array[bias["row"]]
            array = np.delete(array, bias["row"], axis=0)
        elif bias is not None:
            out[bias["tensor"]] = np.asarray(bias["values"])
        out[layer["name"]] = array.T.reshape(layer["shape"])
    return out

"""A programmed chip read back: measured conductances in the layout `noiseproof export` writes
(per layer an npz of G+ and G- per tile, and manifest.json) mapped back to the weights the
chip computes with, w = (G+ - G-) * weight_per_us (Drolet et al. 2023; noiseproof.export).

Everything is checked against the checkpoint before use, each problem one line: the
manifest's format, layers (names, tensor and array shapes, bias handling), tile size and grid,
every npz present with both arrays of the tile shape, every conductance finite and >= 0.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from noiseproof.chip import ChipSelection, Params, chip_params
from noiseproof.export.files import FORMAT
from noiseproof.export.layout import crossbar_arrays


def read_manifest(folder: str | Path) -> dict[str, Any]:
    """The manifest.json of an export folder; ValueError if missing, unreadable or foreign."""
    path = Path(folder) / "manifest.json"
    if not Path(folder).is_dir():
        raise ValueError(f"readback: no folder {folder}")
    if not path.is_file():
        raise ValueError(
            f"readback: {folder} holds no manifest.json (the layout of noiseproof export)"
        )
    try:
        manifest = json.loads(path.read_text())
    except (ValueError, UnicodeDecodeError):
        raise ValueError(f"readback: {path} is not valid JSON") from None
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        raise ValueError(f"readback: {path} is not a {FORMAT} manifest")
    return manifest


def _tile(manifest: dict[str, Any]) -> tuple[int, int]:
    tile = manifest.get("tile") or {}
    rows, cols = tile.get("rows"), tile.get("cols")
    if not (isinstance(rows, int) and rows >= 1 and isinstance(cols, int) and cols >= 1):
        raise ValueError(f"readback: the manifest's tile size is not two positive integers: {tile}")
    return rows, cols


def _conductances(folder: Path, layer: dict[str, Any], tile: tuple[int, int]) -> np.ndarray:
    """G+ - G- of one layer's tiles, [grid_rows * rows, grid_cols * cols] (uS), checked."""
    name = layer["name"]
    file = folder / str((layer.get("files") or {}).get("npz", ""))
    if not file.is_file():
        raise ValueError(f"readback: the tiles of {name} are missing ({file.name} not in {folder})")
    with np.load(file, allow_pickle=False) as arrays:
        if not {"g_plus_us", "g_minus_us"} <= set(arrays.files):
            raise ValueError(f"readback: {file.name} lacks g_plus_us or g_minus_us")
        g_plus, g_minus = arrays["g_plus_us"], arrays["g_minus_us"]
    n_rows, n_cols = layer["array_shape"]
    grid = (math.ceil(n_rows / tile[0]), math.ceil(n_cols / tile[1]))
    for g in (g_plus, g_minus):
        if g.shape != (*grid, *tile):
            raise ValueError(
                f"readback: {file.name} holds tiles {list(g.shape)}, the manifest's "
                f"{tile[0]}x{tile[1]} tiles of a {n_rows}x{n_cols} array need {[*grid, *tile]}"
            )
        if not np.isfinite(g).all():
            raise ValueError(f"readback: {file.name} holds a conductance that is not finite")
        if (g < 0).any():
            raise ValueError(
                f"readback: {file.name} holds a negative conductance ({float(g.min()):g} uS)"
            )
    difference = (g_plus - g_minus).transpose(0, 2, 1, 3)
    return difference.reshape(grid[0] * tile[0], grid[1] * tile[1])[:n_rows, :n_cols]


def readback_chip(
    folder: str | Path, model: nn.Module, selection: ChipSelection | None = None
) -> Params:
    """The on-chip tensors of `model` (`selection`) as the read-back conductances in `folder`
    give them: every array of the manifest mapped back to its tensor (and its bias row to
    the bias); tensors kept digital (a digital bias) as the model holds them. ValueError in
    one line when the folder does not match the model (module docstring)."""
    folder = Path(folder)
    manifest = read_manifest(folder)
    tile = _tile(manifest)
    mode = (manifest.get("bias") or {}).get("mode", "row")
    if mode not in ("row", "digital"):
        raise ValueError(f"readback: unknown bias mode {mode!r} in the manifest")
    arrays, _ = crossbar_arrays(model, selection, mode)
    layers = {layer.get("name"): layer for layer in manifest.get("layers") or []}
    expected = {array.name: array for array in arrays}
    for name in expected:
        if name not in layers:
            raise ValueError(f"readback: the manifest has no layer {name!r} of the checkpoint")
    for name in layers:
        if name not in expected:
            raise ValueError(f"readback: the manifest's layer {name!r} is not in the checkpoint")
    clean = chip_params(model, selection)
    chip = {name: t.detach().clone() for name, t in clean.items()}
    for name, array in expected.items():
        layer = layers[name]
        shapes = (list(layer.get("shape") or []), list(layer.get("array_shape") or []))
        if shapes != (list(array.shape), list(array.matrix.shape)):
            raise ValueError(
                f"readback: layer {name!r} is {shapes[0]} as array {shapes[1]} in the "
                f"manifest, {list(array.shape)} as {list(array.matrix.shape)} in the checkpoint"
            )
        per_us = layer.get("weight_per_us")
        if not isinstance(per_us, int | float) or not math.isfinite(per_us) or per_us < 0:
            raise ValueError(f"readback: layer {name!r} has no valid weight_per_us")
        values = torch.from_numpy(_conductances(folder, layer, tile) * per_us)
        if array.bias is not None and array.bias.handling == "row":
            chip[array.bias.tensor] = values[-1].to(chip[array.bias.tensor].dtype)
            values = values[:-1]
        chip[name] = _tensor(values, clean[name])
    return chip


def _tensor(matrix: Tensor, like: Tensor) -> Tensor:
    """The tensor an array is the layout of (array = tensor.reshape(out, -1).T), as `like`."""
    return matrix.T.reshape(like.shape).to(dtype=like.dtype, device=like.device).contiguous()

"""The files of a conductance export: per layer an npz, a CSV and a histogram; one manifest.

Per array `<name>` (the tensor's full name, e.g. `net.0.weight`):

- `<name>.npz`: `g_plus_us`, `g_minus_us`, float64 [tile_row, tile_col, row, col];
- `<name>.csv`: one line per weight position of every tile (a G+/G- device pair), in
  programming order (tile by tile, row-major inside a tile): layer, tile_row, tile_col, row,
  col, g_plus_us, g_minus_us, padding (1 on the devices padding an edge tile); the values are
  the npz's, written so that they read back to the same float64;
- `<name>.png`: histogram of the G+ and G- targets of the layer (padding excluded).

`manifest.json`, written last (an export without it is incomplete), says for every layer
how its tensor was unrolled and laid out, its scale, its bias, its tile grid and its files,
and for the whole export the mapping (window, formulas, units), the tile size and orientation,
the checkpoint and the noiseproof version: enough to map the conductances back to weights,
w = (G+ - G-) * scale / (G_max - G_min) (Drolet et al. 2023).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from importlib.metadata import version
from pathlib import Path
from typing import Any

import numpy as np

from noiseproof.atomic import write_atomic, write_json_atomic
from noiseproof.export.layout import CrossbarArray
from noiseproof.export.tiles import TiledConductances, check_export_size, tile_conductances
from noiseproof.filenames import safe_name
from noiseproof.plotting import pyplot, save_figure

FORMAT = "noiseproof-conductances/1"
CSV_COLUMNS = ("layer", "tile_row", "tile_col", "row", "col", "g_plus_us", "g_minus_us", "padding")
CSV_BLOCK = 1 << 16
"""CSV lines formatted at a time (a few MB of text)."""


def file_stems(arrays: list[CrossbarArray]) -> list[str]:
    """File-name stems of the arrays (their safe names); ValueError if two would collide."""
    stems = [safe_name(array.name) for array in arrays]
    for i, stem in enumerate(stems):
        if stem in stems[:i]:
            first = arrays[stems.index(stem)].name
            raise ValueError(
                f"tensors {first!r} and {arrays[i].name!r} would share the file name {stem!r}"
            )
    return stems


def csv_text(layer: str, tiles: TiledConductances) -> str:
    """The CSV of one layer (columns `CSV_COLUMNS`, one line per weight position)."""
    return "".join(csv_blocks(layer, tiles))


def csv_blocks(layer: str, tiles: TiledConductances) -> Iterator[str]:
    """The CSV of one layer in blocks of at most CSV_BLOCK lines (the header first), so that
    writing it takes memory for one block, not for the whole text."""
    yield ",".join(CSV_COLUMNS) + "\n"
    shape = tiles.g_plus.shape
    plus, minus = tiles.g_plus.reshape(-1), tiles.g_minus.reshape(-1)
    padding = tiles.padding().reshape(-1)
    for start in range(0, plus.size, CSV_BLOCK):
        stop = min(start + CSV_BLOCK, plus.size)
        index = [axis.tolist() for axis in np.unravel_index(np.arange(start, stop), shape)]
        values = (plus[start:stop].tolist(), minus[start:stop].tolist())
        pads = padding[start:stop].astype(int).tolist()
        yield "".join(
            f"{layer},{i},{j},{r},{c},{p!r},{m!r},{pad}\n"
            for i, j, r, c, p, m, pad in zip(*index, *values, pads, strict=True)
        )


def histogram(name: str, tiles: TiledConductances, path: Path) -> Path:
    """PNG histogram of a layer's G+ and G- targets (padding excluded), window marked."""
    plt = pyplot()
    used = ~tiles.padding()
    figure, axes = plt.subplots(figsize=(6, 3.5))
    bins = np.linspace(*tiles.window, 51)
    for values, label in ((tiles.g_plus, "G+"), (tiles.g_minus, "G-")):
        counts, _ = np.histogram(values[used], bins=bins)
        axes.stairs(counts, bins, fill=True, alpha=0.6, label=label)
    for g in tiles.window:
        axes.axvline(g, color="black", linestyle="--", linewidth=0.8)
    axes.set_yscale("log")
    axes.set_xlabel("target conductance (uS)")
    axes.set_ylabel("devices")
    rows, cols = tiles.shape
    axes.set_title(f"{name}: {rows} inputs x {cols} outputs, scale {tiles.scale:.4g}")
    axes.legend()
    figure.subplots_adjust(left=0.12, right=0.97, bottom=0.15, top=0.9)
    return save_figure(figure, path)


def _npz(tiles: TiledConductances) -> Callable[[Any], None]:
    def write(handle: Any) -> None:
        np.savez(handle, g_plus_us=tiles.g_plus, g_minus_us=tiles.g_minus)

    return write


def _csv(layer: str, tiles: TiledConductances) -> Callable[[Any], None]:
    def write(handle: Any) -> None:
        for block in csv_blocks(layer, tiles):
            handle.write(block.encode())

    return write


def _unroll_text(array: CrossbarArray) -> str:
    """How the tensor became the (out, in) matrix, for the manifest."""
    text = f"{array.name}.reshape({array.unrolled_shape[0]}, -1)"
    if len(array.shape) > 2:
        text += f": input index = row-major flat index over {list(array.shape[1:])}"
    return text


def _bias_row(array: CrossbarArray) -> bool:
    return array.bias is not None and array.bias.handling == "row"


def layer_entry(array: CrossbarArray, tiles: TiledConductances, stem: str) -> dict[str, Any]:
    """The manifest's record of one layer."""
    out, inputs = array.unrolled_shape
    g_min, g_max = tiles.window
    rows_used, cols_used = tiles.used
    entry: dict[str, Any] = {
        "name": array.name,
        "module": array.module,
        "module_class": array.module_class,
        "dtype": str(array.matrix.dtype).removeprefix("torch."),
        "shape": list(array.shape),
        "unrolled_shape": [out, inputs],
        "unroll": _unroll_text(array),
        "array_shape": list(tiles.shape),
        "array": "unrolled.T: crossbar row r is input r, column c is output c"
        + (f"; the last row ({inputs}) is the bias" if _bias_row(array) else ""),
        "scale": tiles.scale,
        "weight_per_us": tiles.scale / (g_max - g_min),
        "bias": None,
        "tiles": {
            "grid": list(tiles.g_plus.shape[:2]),
            "rows_used": rows_used,
            "cols_used": cols_used,
        },
        "files": {"npz": f"{stem}.npz", "csv": f"{stem}.csv", "histogram": f"{stem}.png"},
    }
    if array.groups is not None:
        entry["groups"] = array.groups
    if array.bias is not None:
        entry["bias"] = {
            "tensor": array.bias.tensor,
            "handling": array.bias.handling,
            "reason": array.bias.reason,
        }
        if _bias_row(array):
            entry["bias"].update(row=inputs, input=1.0)
        else:
            entry["bias"]["values"] = array.bias.values.reshape(-1).tolist()
    return entry


def write_export(
    out: Path,
    arrays: list[CrossbarArray],
    off_chip: dict[str, str],
    window: tuple[float, float],
    tile: tuple[int, int],
    about: dict[str, Any],
) -> dict[str, Any]:
    """Write every layer's npz, CSV and histogram, then `manifest.json`, into folder `out`,
    each file atomically; returns the manifest. `about` adds its keys to the manifest (the
    checkpoint, the noise model spec)."""
    if not arrays:
        raise ValueError("arrays is empty: nothing to export")
    check_export_size({a.name: a.array_shape for a in arrays}, tile)
    g_min, g_max = window
    layers = []
    for array, stem in zip(arrays, file_stems(arrays), strict=True):
        tiles = tile_conductances(array.matrix, window, tile)
        write_atomic(out / f"{stem}.npz", _npz(tiles))
        write_atomic(out / f"{stem}.csv", _csv(array.name, tiles))
        histogram(array.name, tiles, out / f"{stem}.png")
        layers.append(layer_entry(array, tiles, stem))
    manifest = {
        "format": FORMAT,
        "noiseproof_version": version("noiseproof"),
        **about,
        "units": {"conductance": "uS", "weights": "as in the checkpoint"},
        "mapping": {
            "g_min_us": g_min,
            "g_max_us": g_max,
            "scheme": "differential pair per weight: devices G+ and G-, each in [g_min, g_max]",
            "to_conductance": "G+ = g_min + (g_max - g_min) * max(w, 0) / scale, "
            "G- = g_min + (g_max - g_min) * max(-w, 0) / scale",
            "to_weight": "w = (G+ - G-) * scale / (g_max - g_min) = (G+ - G-) * weight_per_us",
            "scale": "max|w| over the layer's array (its bias row included)",
        },
        "tile": {
            "rows": tile[0],
            "cols": tile[1],
            "orientation": "rows are inputs (driven), columns are outputs (read): y = x A",
            "devices": "each position holds a pair (G+, G-): two devices",
            "edge": "edge tiles are padded to the full size with G+ = G- = g_min (weight 0); "
            "rows_used / cols_used per tile row / column give the real part",
            "npz": "g_plus_us, g_minus_us: float64 [tile_row, tile_col, row, col]",
            "csv": ",".join(CSV_COLUMNS) + " (one line per position, padding included)",
            "array_index": "array row = tile_row * rows + row, column = tile_col * cols + col",
        },
        "layers": layers,
        "off_chip": [{"tensor": name, "reason": reason} for name, reason in off_chip.items()],
    }
    write_json_atomic(out / "manifest.json", manifest)
    return manifest

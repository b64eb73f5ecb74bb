"""`noiseproof export`: target conductances of a checkpoint's on-chip tensors, per crossbar tile.

The weights of the checkpoint's chip selection are mapped onto differential conductance pairs
over the window of a noise model that maps weights onto conductances (`tio2_crossbar` by
default, `pcm`, or a device measured by `noiseproof fit-device`), laid out and tiled by
noiseproof.export, and written into --out: per layer an npz, a CSV and a histogram, and
manifest.json saying how to map them back to the weights.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import click

from noiseproof import logs
from noiseproof.errors import NoiseproofError
from noiseproof.outputs import LOCK_NAME, locks_output

DEFAULT_MAPPING = "tio2_crossbar"


def mapping_spec(mapping: str | None, measured: str | None) -> Any:
    """The noise-model spec of --mapping (a name, inline YAML, or a YAML file holding a spec)
    or of --measured (a fit-device file): what `noise_models.create` takes."""
    import yaml

    from noiseproof.config import read_yaml
    from noiseproof.yamlio import load_yaml

    if measured is not None:
        if mapping is not None:
            raise NoiseproofError("give --mapping or --measured, not both")
        return {"name": "measured", "file": measured}
    text = DEFAULT_MAPPING if mapping is None else mapping
    if Path(text).suffix in (".yaml", ".yml") or Path(text).is_file():
        if not Path(text).is_file():
            raise NoiseproofError(f"--mapping: file not found: {text}")
        return read_yaml(text)
    try:
        spec = load_yaml(text)
    except yaml.YAMLError:
        spec = None
    if not isinstance(spec, str | dict):
        raise NoiseproofError(
            f"--mapping: expected a noise model name, a YAML spec or a YAML file, got {text!r}"
        )
    return spec


def file_digest(path: str | Path) -> str:
    """SHA-256 (hex) of a file's bytes."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def refuse_used_folder(out: Path) -> None:
    """NoiseproofError if `out` already holds anything but its lock: an export never mixes."""
    found = sorted(p.name for p in out.iterdir() if p.name != LOCK_NAME) if out.is_dir() else []
    if found:
        raise NoiseproofError(
            f"--out {out} already holds files ({', '.join(found[:3])}"
            f"{', ...' if len(found) > 3 else ''}): choose a new or empty folder"
        )


@click.command(name="export")
@click.argument("checkpoint", type=click.Path())
@click.option(
    "--tile",
    required=True,
    metavar="ROWSxCOLS",
    help="Crossbar tile size in weight positions, e.g. 256x256 (rows are inputs).",
)
@click.option(
    "--mapping",
    help="Noise model whose conductance window the weights are mapped onto: a name "
    "(tio2_crossbar, pcm), a YAML spec ('{name: pcm, g_max: 20}') or a YAML file holding "
    f"one. [default: {DEFAULT_MAPPING}]",
)
@click.option(
    "--measured",
    metavar="DEVICE.yaml",
    help="A device file of `noiseproof fit-device`: map onto its measured window "
    "(same as --mapping '{name: measured, file: DEVICE.yaml}').",
)
@click.option(
    "--bias",
    type=click.Choice(["auto", "row", "digital"]),
    default="auto",
    show_default=True,
    help="Layer biases as the array's last row driven by a constant 1, or kept digital; "
    "auto: digital when the noise model keeps them digital (pcm's default), else row.",
)
@click.option(
    "--out",
    type=click.Path(),
    default="runs/export",
    show_default=True,
    help="Output folder (new or empty).",
)
@locks_output("out")
def command(checkpoint: str, **opts: Any) -> None:
    """Target conductances (G+ and G- in uS) of a checkpoint's on-chip weights, cut into
    crossbar tiles: per layer an npz, a CSV and a histogram, and manifest.json."""
    from noiseproof.chip import ChipSelection
    from noiseproof.experiments.results import text_table
    from noiseproof.export.files import write_export
    from noiseproof.export.layout import DIGITAL_REASON, ROW_REASON, crossbar_arrays
    from noiseproof.export.tiles import check_export_size, conductance_window, parse_tile
    from noiseproof.noise import noise_models
    from noiseproof.registry import validated
    from noiseproof.restore import model_from_checkpoint
    from noiseproof.training.checkpoints import load_checkpoint

    try:
        tile = parse_tile(opts["tile"])
    except ValueError as error:
        raise NoiseproofError(f"--tile: {error}") from None
    noise = noise_models.create(mapping_spec(opts["mapping"], opts["measured"]))
    try:
        window = conductance_window(noise)
    except ValueError as error:
        raise NoiseproofError(str(error)) from None
    bias = opts["bias"]
    if bias == "auto":
        bias = "digital" if getattr(noise, "bias", None) == "digital" else "row"
    out = Path(opts["out"])
    refuse_used_folder(out)
    state, meta = load_checkpoint(checkpoint)
    selection = validated(ChipSelection, f"checkpoint {checkpoint} chip", **meta["chip"])
    arrays, off_chip = crossbar_arrays(model_from_checkpoint(state, meta), selection, bias)
    shapes = {a.name: a.array_shape for a in arrays}
    try:  # from the shapes, before any tile is allocated or file written
        check_export_size(shapes, tile, f"the on-chip arrays of {checkpoint}")
    except ValueError as error:
        raise NoiseproofError(str(error)) from None
    about = {
        "checkpoint": {
            "path": str(Path(checkpoint).resolve()),
            "sha256": file_digest(checkpoint),
            "model": meta["model"],
            "method": meta["method"],
        },
        "noise_model": noise.spec(),
        "bias": {"mode": bias, "meaning": ROW_REASON if bias == "row" else DIGITAL_REASON},
    }
    manifest = write_export(out, arrays, off_chip, window, tile, about)
    rows = [
        [
            layer["name"],
            "x".join(map(str, layer["array_shape"])),
            "x".join(map(str, layer["tiles"]["grid"])),
            f"{layer['scale']:.4g}",
            (layer["bias"] or {}).get("handling", "-"),
        ]
        for layer in manifest["layers"]
    ]
    click.echo(text_table(["layer", "array (in x out)", "tiles", "scale max|w|", "bias"], rows))
    logs.info(
        f"\nwrote {out}/manifest.json and per layer .npz, .csv, .png "
        f"(window {window[0]:g}..{window[1]:g} uS, tiles {tile[0]}x{tile[1]})"
    )

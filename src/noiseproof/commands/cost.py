"""`noiseproof cost`: energy and latency of one inference of a checkpoint on crossbar tiles.

The checkpoint's on-chip tensors are laid out and tiled as `noiseproof export` lays them, one
probe forward counts the MVMs and conversions (noiseproof.export.census), and a first-order
model with a documented constant for every part (noiseproof.export.cost.CostConfig) turns them
into joules and seconds. The chip and the constants come from --config (a YAML file with a
`cost:` section), then the flags, then each --set KEY=VALUE (a key of the `cost:` section).
"""

from __future__ import annotations

import json
from typing import Any

import click

from noiseproof import logs
from noiseproof.errors import NoiseproofError

REQUIRED = {"tile": "--tile ROWSxCOLS", "dac_bits": "--dac-bits N", "adc_bits": "--adc-bits N"}


def cost_section(config_file: str | None, flags: dict[str, Any], sets: tuple[str, ...]) -> Any:
    """The validated CostConfig of --config's `cost:` section (or the file's whole mapping
    when it has none) <- the flags given <- each --set KEY=VALUE."""
    from noiseproof.config import apply_override, read_yaml
    from noiseproof.export.cost import CostConfig
    from noiseproof.registry import validated

    raw: dict[str, Any] = {}
    if config_file is not None:
        read = read_yaml(config_file)
        section = read.get("cost", read)
        if not isinstance(section, dict):
            raise NoiseproofError(f"--config {config_file}: 'cost' must be a mapping of keys")
        raw = dict(section)
    raw.update({key: value for key, value in flags.items() if value is not None})
    for assignment in sets:
        apply_override(raw, assignment)
    missing = [flag for key, flag in REQUIRED.items() if key not in raw]
    if missing:
        raise NoiseproofError(
            f"give {' and '.join(missing)} (or set it in --config's cost: section)"
        )
    return validated(CostConfig, "cost", **raw)


def si(value: float, unit: str) -> str:
    """1.23e-9, 'J' -> '1.23 nJ'."""
    for factor, prefix in ((1, ""), (1e-3, "m"), (1e-6, "u"), (1e-9, "n"), (1e-12, "p")):
        if abs(value) >= factor:
            return f"{value / factor:.3g} {prefix}{unit}"
    return f"{value / 1e-15:.3g} f{unit}" if value else f"0 {unit}"


def summary(result: dict[str, Any]) -> list[str]:
    """The estimate's totals in a few lines."""
    totals, energy, latency = result["totals"], result["energy_j"], result["latency_s"]
    tops = result["tops_per_w"]
    parts = ", ".join(
        f"{name} {si(energy[key], 'J')}"
        for key, name in (
            ("adc", "ADC"),
            ("dac", "DAC"),
            ("array", "array"),
            ("accumulate", "accumulation"),
            ("digital", "digital"),
        )
    )
    return [
        f"tiles {totals['tiles']} of {'x'.join(map(str, result['tile']))}; "
        f"{totals['mvms']:,} MVMs in {totals['mvm_steps']:,} steps; "
        f"{totals['dac_conversions']:,} DAC and {totals['adc_conversions']:,} ADC conversions",
        f"analog MACs {totals['analog_macs']:,}; digital FLOPs {totals['digital_flops']:,} "
        f"of {totals['flops']:,} counted; digital additions {totals['digital_adds']:,}",
        f"energy per inference {si(energy['total'], 'J')} ({parts})",
        f"latency per inference {si(latency['total'], 's')} (analog {si(latency['analog'], 's')}"
        f", steps of {si(latency['step'], 's')}; digital {si(latency['digital'], 's')})",
        "efficiency "
        + (f"{tops:.3g} TOPS/W" if tops is not None else "-")
        + (
            f" (MVMs alone: {result['mvm_tops_per_w']:.3g} TOPS/W)"
            if result["mvm_tops_per_w"] is not None
            else ""
        ),
    ]


@click.command(name="cost")
@click.argument("checkpoint", type=click.Path())
@click.option(
    "--tile", metavar="ROWSxCOLS", help="Crossbar tile size in weight positions (rows are inputs)."
)
@click.option("--dac-bits", type=int, help="Input DAC bits per conversion.")
@click.option("--adc-bits", type=int, help="Output ADC bits per conversion.")
@click.option(
    "--mapping",
    help="Noise model whose conductance window the weights are mapped onto: a name "
    "(tio2_crossbar, pcm), a YAML spec or a YAML file holding one. [default: tio2_crossbar]",
)
@click.option("--weight-slices", type=int, help="Device pairs per weight, each read by the ADC.")
@click.option(
    "--bias",
    type=click.Choice(["auto", "row", "digital"]),
    help="Layer biases as the array's last row or digital (as export). [default: auto]",
)
@click.option(
    "--config",
    "config_file",
    type=click.Path(),
    help="YAML file with a cost: section (chip and constants; an experiment config works).",
)
@click.option(
    "--set",
    "assignments",
    multiple=True,
    metavar="KEY=VALUE",
    help="Override a key of the cost: section, e.g. --set read_voltage_v=0.2.",
)
@click.option("--json", "as_json", is_flag=True, help="Print the estimate as one JSON object.")
def command(checkpoint: str, **opts: Any) -> None:
    """Energy and latency of one inference (one example) of a checkpoint on crossbar tiles: tiles,
    MVMs, DAC/ADC conversions and digital operations, with a first-order energy model whose
    every constant is documented (docs/cost.md)."""
    from pathlib import Path

    from noiseproof.chip import ChipSelection
    from noiseproof.commands.export import file_digest, mapping_spec
    from noiseproof.experiments.results import text_table
    from noiseproof.export.cost import estimate_model
    from noiseproof.registry import validated
    from noiseproof.restore import model_from_checkpoint
    from noiseproof.training.checkpoints import load_checkpoint

    flags = {
        "tile": opts["tile"],
        "dac_bits": opts["dac_bits"],
        "adc_bits": opts["adc_bits"],
        "mapping": None if opts["mapping"] is None else mapping_spec(opts["mapping"], None),
        "weight_slices": opts["weight_slices"],
        "bias": opts["bias"],
    }
    config = cost_section(opts["config_file"], flags, opts["assignments"])
    state, meta = load_checkpoint(checkpoint)
    selection = validated(ChipSelection, f"checkpoint {checkpoint} chip", **meta["chip"])
    model = model_from_checkpoint(state, meta)
    result = estimate_model(model, meta["input_shape"], config, selection)
    about = {"path": str(Path(checkpoint).resolve()), "sha256": file_digest(checkpoint)}
    if opts["as_json"]:
        click.echo(json.dumps({"checkpoint": about, **result}, indent=2))
        return
    rows = [
        [
            layer["name"],
            "x".join(map(str, layer["array"])),
            "x".join(map(str, layer["tiles_grid"])),
            f"{layer['vectors']:,}",
            f"{layer['mvms']:,}",
            f"{layer['dac_conversions']:,}",
            f"{layer['adc_conversions']:,}",
            si(layer["energy_j"], "J"),
        ]
        for layer in result["layers"]
    ]
    header = ["layer", "array (in x out)", "tiles", "vectors", "MVMs", "DAC", "ADC", "energy"]
    click.echo(text_table(header, rows))
    click.echo("\n".join(["", *summary(result)]))
    logs.info(
        f"\none inference of {checkpoint} ({meta['model'].get('name')}, input "
        f"{meta['input_shape']}); window {result['window_us'][0]:g}..{result['window_us'][1]:g}"
        f" uS; first-order model: see docs/cost.md for its constants and what it ignores"
    )

"""`noiseproof landscape`: loss along random relative directions and flatness per checkpoint.

Directions v ~ N(0, (scale * |theta|)^2), alpha on a grid in [-2, 2], several repeats
(Buechel et al. 2022). Writes landscape.json (curves and flatness per method, and the
`inputs` of each: the checkpoint's digest, the data's fingerprint and the hash of the
landscape settings with the seed and chip selection), flatness.csv and landscape.png into
--out.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from noiseproof import logs
from noiseproof.commands.options import device_option, numbers, resolved_device
from noiseproof.outputs import locks_output


@click.command(name="landscape")
@click.argument("checkpoints", nargs=-1, required=True, type=click.Path())
@click.option("--scale", type=float, default=0.2, show_default=True, help="Relative std s of v.")
@click.option("--alphas", help="Step sizes, comma-separated (default -2..2 by 0.25).")
@click.option("--repeats", type=int, default=5, show_default=True, help="Random directions.")
@click.option(
    "--examples", type=int, default=2000, show_default=True, help="Test examples per point."
)
@click.option("--dataset", help="Dataset name (default: the first checkpoint's).")
@click.option("--seed", type=int, default=0, show_default=True, help="Seed of the directions.")
@click.option(
    "--out", type=click.Path(), default="runs/landscape", show_default=True, help="Output folder."
)
@device_option
@locks_output("out")
def command(checkpoints: tuple[str, ...], **opts: Any) -> None:
    """Loss landscape along random directions: one plot comparing methods, flatness per method."""

    import torch

    from noiseproof.atomic import write_json_atomic, write_text_atomic
    from noiseproof.commands.attack import load_trained
    from noiseproof.evaluation.landscape import (
        LandscapeConfig,
        flatness_rows,
        landscape_plot,
        loss_landscape,
    )
    from noiseproof.experiments.provenance import analysis_inputs
    from noiseproof.experiments.results import text_table
    from noiseproof.registry import validated

    settings = {
        "scale": opts["scale"],
        "repeats": opts["repeats"],
        "examples": opts["examples"],
    }
    if opts["alphas"]:
        settings["alphas"] = numbers(opts["alphas"], "--alphas")
    config = validated(LandscapeConfig, "landscape", **settings)
    loaded, data = load_trained(checkpoints, opts["dataset"], None, resolved_device(opts["device"]))
    curves = {
        label: loss_landscape(
            model,
            data.x_test,
            data.y_test,
            config,
            generator=torch.Generator().manual_seed(opts["seed"]),
            selection=meta["selection"],
        )
        for label, model, meta in loaded
    }
    named = {"landscape": config.model_dump(mode="json"), "seed": opts["seed"]}
    inputs: dict[str, dict[str, str]] = {}
    for label, _, meta in loaded:
        digest, fingerprint = meta["provenance"]
        inputs[label] = analysis_inputs(digest, fingerprint, {**named, "chip": meta["chip"]})
    out = Path(opts["out"])
    write_json_atomic(
        out / "landscape.json",
        {
            "config": config.model_dump(mode="json"),
            "checkpoints": list(checkpoints),
            "inputs": inputs,
            "flatness": {label: c["flatness"] for label, c in curves.items()},
            "curves": curves,
        },
    )
    header, rows = flatness_rows(curves)
    write_text_atomic(out / "flatness.csv", "\n".join(",".join(r) for r in [header, *rows]) + "\n")
    landscape_plot(curves, out / "landscape.png")
    click.echo(text_table(header, rows))
    logs.info(f"\nwrote {out}/landscape.json, flatness.csv, landscape.png")

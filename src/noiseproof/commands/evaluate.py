"""`noiseproof evaluate CHECKPOINT`: a saved model under a noise sweep."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from noiseproof import logs
from noiseproof.commands.options import (
    build_config,
    device_option,
    executor_options,
    executor_overrides,
    numbers,
    resume_options,
    split_list,
)
from noiseproof.errors import NoiseproofError
from noiseproof.outputs import check_out


@click.command(name="evaluate")
@click.argument("checkpoint", type=click.Path())
@click.option("--config", "config_file", type=click.Path(), help="YAML with noise/levels/...")
@click.option("--dataset", help="Evaluate on this dataset instead of the checkpoint's.")
@click.option("--noise", help="Noise model name(s), comma-separated.")
@click.option("--levels", help="Noise levels, comma-separated.")
@click.option("--transfers", type=int, help="Simulated chips per level.")
@click.option("--seed", help="Seed of the noise draws.")
@click.option("--set", "assignments", multiple=True, metavar="KEY=VALUE", help="Override a key.")
@click.option(
    "--out", type=click.Path(), default="runs/evaluate", show_default=True, help="Output folder."
)
@resume_options
@click.option("--no-progress", is_flag=True, help="Hide progress bars.")
@device_option
@executor_options
def command(checkpoint: str, **opts: Any) -> None:
    """Evaluate a saved checkpoint under a noise sweep (Monte Carlo over simulated chips).

    The records name the checkpoint (its digest): an --out folder holding the evaluation of
    another checkpoint is refused, naming both, even with --resume.
    """
    from noiseproof.analog_ranges import check_stored
    from noiseproof.commands.from_checkpoint import (
        checkpoint_base,
        checkpoint_label,
        refuse_owned_changes,
    )
    from noiseproof.experiments.compare import run_compare
    from noiseproof.training.checkpoints import load_checkpoint

    _, meta = load_checkpoint(checkpoint)  # metadata checked against CheckpointMeta
    base, label = checkpoint_base(meta), checkpoint_label(meta)
    config = build_config(
        opts["config_file"],
        {
            "dataset": opts["dataset"],
            "noise": split_list(opts["noise"]),
            "levels": numbers(opts["levels"], "--levels"),
            "transfers": opts["transfers"],
            "seeds": numbers(opts["seed"], "--seed", int),
            "device": opts["device"],
            "executor": executor_overrides(opts),
        },
        opts["assignments"],
        base=base,
    )
    refuse_owned_changes(config, base)  # model, method and train settings are the checkpoint's
    try:  # learned input ranges: the checkpoint must hold them, before any work
        check_stored(config.forward, meta.get("analog_ranges"), f"checkpoint {checkpoint}")
    except ValueError as error:
        raise NoiseproofError(str(error)) from None
    run_compare(
        config,
        check_out(opts["out"]),
        resume=opts["resume"],
        overwrite=opts["overwrite"],
        pretrained={label: Path(checkpoint)},
        progress=not opts["no_progress"],
        log=logs.info,
        show=click.echo,
    )

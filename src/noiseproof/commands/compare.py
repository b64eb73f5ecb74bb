"""`noiseproof compare`: train each method, evaluate it over simulated chips, report."""

from __future__ import annotations

import json
from typing import Any

import click
import yaml

from noiseproof import logs
from noiseproof.commands.options import (
    build_config,
    common_options,
    executor_options,
    executor_overrides,
    log_option,
    logger_names,
    numbers,
    resume_options,
    split_list,
)
from noiseproof.outputs import check_out


@click.command(name="compare")
@common_options
@click.option(
    "--methods", help="Training methods, comma-separated (e.g. standard,noise_injection)."
)
@click.option("--levels", help="Noise levels to sweep, comma-separated (e.g. 0,0.1,0.3).")
@click.option("--transfers", type=int, help="Simulated chips (noise draws) per level.")
@click.option(
    "--out", type=click.Path(), default="runs/compare", show_default=True, help="Output folder."
)
@resume_options
@executor_options
@click.option("--print-config", is_flag=True, help="Print the resolved config as YAML and exit.")
@log_option
def command(**opts: Any) -> None:
    """Train each method, evaluate it over simulated chips, write results and a report.

    With no options: an MLP on full MNIST with standard, dropout and noise_injection training,
    under relative Gaussian mismatch at several levels, 100 transfers per level.
    """
    config = build_config(
        opts["config_file"],
        {
            "dataset": opts["dataset"],
            "model": opts["model"],
            "methods": split_list(opts["methods"]),
            "noise": split_list(opts["noise"]),
            "levels": numbers(opts["levels"], "--levels"),
            "transfers": opts["transfers"],
            "epochs": opts["epochs"],
            "seeds": numbers(opts["seed"], "--seed", int),
            "device": opts["device"],
            "executor": executor_overrides(opts),
        },
        opts["assignments"],
    )
    logs.debug(f"resolved config: {json.dumps(config.to_dict())}")
    if opts["print_config"]:
        click.echo(yaml.safe_dump(config.to_dict(), sort_keys=False), nl=False)
        return
    from noiseproof.experiments.compare import run_compare
    from noiseproof.settings import RunSettings
    from noiseproof.training.distributed import check_divisible, process_group

    loggers, out = logger_names(opts["loggers"]), check_out(opts["out"])
    settings = RunSettings.from_config(config)  # the device resolved once, for this rank
    # under torchrun: every rank trains each model with DDP, rank 0 evaluates and writes
    click.get_current_context().with_resource(process_group(settings.device))
    check_divisible(config.train.batch_size)
    run_compare(
        config,
        out,
        resume=opts["resume"],
        overwrite=opts["overwrite"],
        progress=not opts["no_progress"],
        log=logs.info,
        show=click.echo,
        loggers=loggers,
        settings=settings,
    )

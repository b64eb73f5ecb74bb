"""`noiseproof train`: one model, one method, one checkpoint (and its history CSV)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import click

from noiseproof import logs
from noiseproof.commands.options import (
    build_config,
    common_options,
    log_option,
    logger_names,
    numbers,
    split_list,
)
from noiseproof.errors import NoiseproofError
from noiseproof.outputs import locks_output


@click.command(name="train")
@common_options
@click.option("--method", help="Training method (default: the config's single method).")
@click.option(
    "--out",
    type=click.Path(),
    default="runs/train/model.pt",
    show_default=True,
    help="Checkpoint path; a history CSV is written beside it.",
)
@log_option
@locks_output("out", file=True, companions=lambda out: [out.with_suffix(".history.csv").name])
def command(**opts: Any) -> None:
    """Train one model with one method and save a checkpoint (naming its inputs: the data's
    fingerprint and the hash of its config, as the checkpoints of compare do)."""
    from noiseproof.experiments.jobs import describe_task, run_task, train_and_save

    config = build_config(
        opts["config_file"],
        {
            "dataset": opts["dataset"],
            "model": opts["model"],
            "noise": split_list(opts["noise"]),
            "methods": [opts["method"]] if opts["method"] else None,
            "epochs": opts["epochs"],
            "seeds": numbers(opts["seed"], "--seed", int),
            "device": opts["device"],
        },
        opts["assignments"],
    )
    logs.debug(f"resolved config: {json.dumps(config.to_dict())}")
    if len(config.methods) != 1 or len(config.seeds) != 1:
        raise NoiseproofError("train takes one method and one seed: use --method and --seed")
    entry, seed = config.methods[0], config.seeds[0]
    loggers = logger_names(opts["loggers"])
    from noiseproof.settings import RunSettings
    from noiseproof.training.distributed import check_divisible, is_main, process_group

    settings = RunSettings.from_config(config)  # the device resolved once, for this rank
    # under torchrun: join the process group (left when the command ends); only rank 0 writes
    click.get_current_context().with_resource(process_group(settings.device))
    check_divisible(config.train.batch_size)
    main = is_main()
    data = config.dataset.load()
    out = Path(opts["out"])
    from noiseproof.filenames import safe_name
    from noiseproof.training.callbacks import make_loggers

    named = out.parent / "logs" / safe_name(out.stem)
    callbacks = make_loggers(loggers, named) if loggers and main else ()
    task = run_task(config, data)
    from noiseproof.experiments.grid import train_config
    from noiseproof.experiments.provenance import config_hash, data_fingerprint

    _, meta = train_and_save(
        config,
        entry,
        data,
        out if main else None,
        noise=config.noise[0].model,
        seed=seed,
        task=task,
        settings=settings,
        progress=not opts["no_progress"],
        log=logs.info,
        callbacks=callbacks,
        inputs={  # what it was trained from, as compare's checkpoints name it
            "data": data_fingerprint(config.dataset.spec(), data),
            "config": config_hash(train_config(config, entry.label, seed)),
        },
    )
    if main:
        write_history(out.with_suffix(".history.csv"), meta["history"])
        logs.info(f"task {describe_task(task, config.task, data)}")


def write_history(path: Path, history: list[dict[str, float]]) -> None:
    """The per-epoch training log as CSV."""
    from noiseproof.atomic import write_text_atomic

    columns = list(dict.fromkeys(key for row in history for key in row))
    lines = [",".join(columns)] + [
        ",".join(str(row.get(c, "")) for c in columns) for row in history
    ]
    write_text_atomic(path, "\n".join(lines) + "\n")

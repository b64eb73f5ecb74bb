"""The `noiseproof` command line: compare, train, evaluate, list, attack, landscape, correct,
fit-device, export, cost, calibrate."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import click
import yaml

from noiseproof import logs
from noiseproof.commands import (
    attack,
    calibrate,
    correct,
    cost,
    export,
    fit_device,
    landscape,
    recommend,
)
from noiseproof.commands.options import (
    OneLineErrors,
    build_config,
    common_options,
    device_option,
    executor_options,
    executor_overrides,
    global_options,
    log_option,
    logger_names,
    numbers,
    split_list,
)
from noiseproof.errors import NoiseproofError
from noiseproof.outputs import check_out, locks_output


def resume_options(func: Any) -> Any:
    """--resume and --overwrite: what to do with an --out folder that already holds a run."""
    options = [
        click.option(
            "--resume",
            is_flag=True,
            help="Continue the run in --out: finished jobs are kept (checked to be this "
            "config's, computed from the same checkpoints and data), the rest are run. With "
            "no earlier run there, a fresh one starts (a warning says so).",
        ),
        click.option(
            "--overwrite",
            is_flag=True,
            help="Replace the run in --out: its results, reports, records, checkpoints, logs "
            "and config.yaml are removed once the new config, data and checkpoints are "
            "checked, before anything is written. Without --resume or --overwrite, a folder "
            "holding any of them is refused.",
        ),
    ]
    for option in reversed(options):
        func = option(func)
    return func


@click.group(cls=OneLineErrors, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="noiseproof")
@global_options
def cli() -> None:
    """Train neural networks that stay accurate under hardware weight noise, and prove it.

    Results tables go to stdout; progress and messages to stderr (a bar on a terminal, plain
    lines otherwise). Plugins: --plugin my.module, or an installed package's entry point in
    the group 'noiseproof.plugins'.
    """


@cli.command()
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
def compare(**opts: Any) -> None:
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
    from noiseproof.training.distributed import check_divisible, process_group

    loggers, out = logger_names(opts["loggers"]), check_out(opts["out"])
    # under torchrun: every rank trains each model with DDP, rank 0 evaluates and writes
    click.get_current_context().with_resource(process_group(config.device))
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
    )


@cli.command()
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
def train(**opts: Any) -> None:
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
    from noiseproof.training.distributed import check_divisible, is_main, process_group

    # under torchrun: join the process group (left when the command ends); only rank 0 writes
    click.get_current_context().with_resource(process_group(config.device))
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


@cli.command()
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
def evaluate(checkpoint: str, **opts: Any) -> None:
    """Evaluate a saved checkpoint under a noise sweep (Monte Carlo over simulated chips).

    The records name the checkpoint (its digest): an --out folder holding the evaluation of
    another checkpoint is refused, naming both, even with --resume.
    """
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


@cli.command(name="list")
@click.argument(
    "kind",
    required=False,
    type=click.Choice(["methods", "noise", "models", "datasets", "tasks"]),
)
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
def list_components(kind: str | None, as_json: bool) -> None:
    """List methods, noise models, models, datasets and tasks with their parameters and
    defaults (installed plugins included)."""
    from noiseproof.data import datasets
    from noiseproof.methods import methods
    from noiseproof.models import models
    from noiseproof.noise import noise_models
    from noiseproof.plugins import load_entry_points
    from noiseproof.tasks import tasks

    load_entry_points()

    tables = {
        "methods": methods,
        "noise": noise_models,
        "models": models,
        "datasets": datasets,
        "tasks": tasks,
    }
    chosen = {k: v.describe() for k, v in tables.items() if kind in (None, k)}
    if as_json:
        click.echo(json.dumps(chosen, indent=2, default=str))
        return
    for name, rows in chosen.items():
        click.secho(f"{name}:", bold=True)
        for row in rows:
            level = getattr(tables[name].get(row["name"]), "level_field", "")
            sweep = f"  [sweep: {level}]" if level else ""
            metrics = getattr(tables[name].get(row["name"]), "metrics", None)
            if name == "tasks" and metrics:
                sweep = "  [metrics: " + ", ".join(m.name for m in metrics) + "]"
            plugin = f"  [plugin: {row['plugin']}]" if row.get("plugin") else ""
            click.echo(f"  {row['name']}  - {row['summary']}{sweep}{plugin}")
            for p in row["params"]:
                default = "required" if p["required"] else f"default {p['default']!r}"
                click.echo(f"      {p['name']} ({p['type']}, {default}) {p['help']}".rstrip())
        click.echo()


for _command in (
    attack.command,
    landscape.command,
    correct.command,
    fit_device.command,
    export.command,
    recommend.command,
    cost.command,
    calibrate.command,
):
    cli.add_command(_command)
for _command in cli.commands.values():  # -q, -v and --plugin after the command name too
    global_options(_command)


def main() -> None:
    """Console-script entry point."""
    sys.exit(cli.main(prog_name="noiseproof"))

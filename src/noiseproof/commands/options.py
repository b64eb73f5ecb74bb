"""Shared pieces of the command line: one-line errors, list/number options, config building."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import click

from noiseproof.errors import NoiseproofError, one_line

if TYPE_CHECKING:  # the config module imports torch: only commands that run import it
    from noiseproof.config import ExperimentConfig


class OneLineErrors(click.Group):
    """A click group that reports NoiseproofError (and OS errors) as one line with exit code 2."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except NoiseproofError as error:
            raise UserError(str(error)) from None
        except OSError as error:
            raise UserError(
                f"{error.strerror or error}: {error.filename or ''}".rstrip(": ")
            ) from None


class UserError(click.ClickException):
    """Printed as 'error: <message>' with exit code 2."""

    exit_code = 2

    def show(self, file: Any = None) -> None:
        click.echo(f"error: {one_line(self.format_message())}", err=True)


def split_list(text: str | None) -> list[str] | None:
    """'a,b , c' -> ['a', 'b', 'c'] (None stays None)."""
    return None if text is None else [item.strip() for item in text.split(",") if item.strip()]


def numbers(text: str | None, option: str, kind: type = float) -> list[Any] | None:
    """Parse a comma list of numbers for `option`; one clear line on a bad item."""
    items = split_list(text)
    if items is None:
        return None
    try:
        return [kind(item) for item in items]
    except ValueError:
        raise NoiseproofError(f"{option}: expected comma-separated numbers, got {text!r}") from None


def build_config(
    config_file: str | None,
    overrides: dict[str, Any],
    assignments: tuple[str, ...],
    base: dict[str, Any] | None = None,
) -> ExperimentConfig:
    """Default (or `base`) <- YAML file <- command-line options <- --set key=value, validated.

    Every layer merges over the one before by `noiseproof.yamlio.deep_merge` (the file, the
    options and each --set alike): `dataset: {val_fraction: 0.2}` in a file keeps the default
    dataset's name; `--dataset digits` over an mnist mapping gives a plain digits dataset.
    """
    from noiseproof.config import ExperimentConfig, apply_override, default_config, read_yaml
    from noiseproof.yamlio import deep_merge

    raw = dict(base) if base is not None else default_config()
    if config_file:
        raw = deep_merge(raw, read_yaml(config_file))
    for key, value in overrides.items():
        if value is None:
            continue
        raw = deep_merge(raw, {"train": {"epochs": value}} if key == "epochs" else {key: value})
    for assignment in assignments:
        apply_override(raw, assignment)
    return ExperimentConfig.parse(raw)


def common_options(func: Any) -> Any:
    """The options every experiment command shares."""
    options = [
        click.option("--config", "config_file", type=click.Path(), help="YAML config file."),
        click.option("--dataset", help="Dataset name (see `noiseproof list`)."),
        click.option("--model", help="Model name (see `noiseproof list`)."),
        click.option("--noise", help="Noise model name(s), comma-separated."),
        click.option("--epochs", type=int, help="Training epochs."),
        click.option("--seed", help="Seed(s), comma-separated, e.g. 0,1,2."),
        click.option(
            "--set",
            "assignments",
            multiple=True,
            metavar="KEY=VALUE",
            help="Override any config key, e.g. --set train.lr=0.01 (repeatable).",
        ),
        click.option("--no-progress", is_flag=True, help="Hide progress bars."),
    ]
    for option in reversed(options):
        func = option(func)
    return device_option(func)


VERBOSITY = "noiseproof.verbosity"
"""Key of the chosen verbosity in the root click context's `meta`."""


def set_verbosity(ctx: click.Context, param: click.Parameter, value: bool) -> None:
    """Callback of -q/--quiet and -v/--verbose (on the group and on each command): configure
    logging once per run, then change it only for a flag given; -q with -v is refused."""
    from noiseproof import logs

    root = ctx.find_root()
    wanted = (-1 if param.name == "quiet" else 1) if value else 0
    current = root.meta.get(VERBOSITY)
    if current is None:
        root.call_on_close(logs.configure(wanted))
    elif not value or wanted == current:
        return
    elif current != 0:
        raise click.UsageError("--quiet and --verbose exclude each other")
    else:
        logs.configure(wanted)
    root.meta[VERBOSITY] = wanted


def load_plugins(ctx: click.Context, param: click.Parameter, value: tuple[str, ...]) -> None:
    """Callback of --plugin: import each plugin module now, one error line if one fails."""
    from noiseproof.plugins import load_plugin

    for module in value:
        try:
            load_plugin(module)
        except NoiseproofError as error:
            raise UserError(str(error)) from None


def global_options(func: Any) -> Any:
    """-q/--quiet, -v/--verbose and --plugin: on the group and on every command, so they work
    before or after the command name."""
    options = [
        click.option(
            "-q",
            "--quiet",
            is_flag=True,
            is_eager=True,
            expose_value=False,
            callback=set_verbosity,
            help="Only warnings and errors: no progress, no info lines.",
        ),
        click.option(
            "-v",
            "--verbose",
            is_flag=True,
            is_eager=True,
            expose_value=False,
            callback=set_verbosity,
            help="Debug messages too.",
        ),
        click.option(
            "--plugin",
            "plugins",
            multiple=True,
            metavar="MODULE",
            expose_value=False,
            callback=load_plugins,
            help="Import this module first: it registers models, noise models, methods or "
            "datasets (repeatable). Installed plugin packages load by themselves.",
        ),
    ]
    # a function collects decorators in reverse; a built Command appends them in order
    for option in options if isinstance(func, click.Command) else reversed(options):
        func = option(func)
    return func


def device_option(func: Any) -> Any:
    """--device auto|cpu|cuda|cuda:N|mps (default: the config's `device`, itself 'auto')."""
    return click.option(
        "--device",
        metavar="DEVICE",
        help="Where to train and evaluate: auto (CUDA when available, else CPU), cpu, cuda, "
        "cuda:N or mps. Config key `device`.",
    )(func)


def resolved_device(value: str | None) -> Any:
    """The torch.device of a --device value (None: auto); a missing or misspelt device is one
    NoiseproofError line."""
    from noiseproof.devices import resolve_device

    try:
        return resolve_device(value, "--device")
    except ValueError as error:
        raise NoiseproofError(str(error)) from None


def executor_options(func: Any) -> Any:
    """--executor local|ray, --ray-address, --transfers-per-job (config section `executor`)."""
    options = [
        click.option(
            "--executor",
            type=click.Choice(["local", "ray"]),
            help="Who runs the jobs: local (this process) or ray. Config key `executor.name`.",
        ),
        click.option(
            "--ray-address",
            metavar="ADDRESS",
            help="Ray cluster to join: auto or host:port (default: start a local Ray instance "
            "with this machine's CPUs and GPUs). The output folder must be storage every node "
            "sees.",
        ),
        click.option(
            "--transfers-per-job",
            type=int,
            help="Cut each evaluation's chips into jobs of this many (merged exactly).",
        ),
    ]
    for option in reversed(options):
        func = option(func)
    return func


def executor_overrides(opts: dict[str, Any]) -> dict[str, Any] | None:
    """The `executor` config section the executor options give (None: none given)."""
    section = {
        key: opts[option]
        for key, option in (
            ("name", "executor"),
            ("address", "ray_address"),
            ("transfers_per_job", "transfers_per_job"),
        )
        if opts.get(option) is not None
    }
    if section.get("address") and "name" not in section:
        section["name"] = "ray"
    return section or None


def log_option(func: Any) -> Any:
    """--log csv,tensorboard: the per-epoch training loggers (noiseproof.training.callbacks)."""
    return click.option(
        "--log",
        "--loggers",
        "loggers",
        multiple=True,
        metavar="NAME[,NAME]",
        help="Log every training epoch: csv, tensorboard (comma list or repeated); "
        "written under the output folder's logs/. --loggers is the same (under torchrun, "
        "whose own --log-dir takes --log).",
    )(func)


def logger_names(values: tuple[str, ...]) -> list[str]:
    """The --log values as a list of known logger names (NoiseproofError on an unknown one,
    or on 'tensorboard' without the tensorboard package), checked before anything runs."""
    from noiseproof.training.callbacks import check_logger_names

    return check_logger_names([name for value in values for name in split_list(value) or []])


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

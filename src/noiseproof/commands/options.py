"""Shared pieces of the command line: one-line errors, list/number options, config building."""

from __future__ import annotations

from typing import Any

import click

from noiseproof.config import ExperimentConfig, apply_override, default_config, read_yaml
from noiseproof.errors import NoiseproofError


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
        click.echo(f"error: {self.format_message()}", err=True)


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
    """Default (or `base`) <- YAML file <- command-line options <- --set key=value, validated."""
    raw = base if base is not None else default_config()
    if config_file:
        raw = {**raw, **read_yaml(config_file)}
    for key, value in overrides.items():
        if value is None:
            continue
        if key == "epochs":
            raw["train"] = {**raw.get("train", {}), "epochs": value}
        else:
            raw[key] = value
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
    return func

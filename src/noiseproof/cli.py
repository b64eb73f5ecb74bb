"""The `noiseproof` command line: compare, train, evaluate, list, attack, landscape, correct,
fit-device, export, cost, calibrate: the group and the registration of every command, each
in its own module of noiseproof.commands."""

from __future__ import annotations

import sys

import click

from noiseproof.commands import (
    attack,
    calibrate,
    compare,
    components,
    correct,
    cost,
    evaluate,
    export,
    fit_device,
    landscape,
    recommend,
    train,
)
from noiseproof.commands.options import OneLineErrors, global_options


@click.group(cls=OneLineErrors, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="noiseproof")
@global_options
def cli() -> None:
    """Train neural networks that stay accurate under hardware weight noise, and prove it.

    Results tables go to stdout; progress and messages to stderr (a bar on a terminal, plain
    lines otherwise). Plugins: --plugin my.module, or an installed package's entry point in
    the group 'noiseproof.plugins'.
    """


for _command in (
    compare.command,
    train.command,
    evaluate.command,
    components.command,
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

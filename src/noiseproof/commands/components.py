"""`noiseproof list [KIND]`: the registered components with their parameters and defaults."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

import click

if TYPE_CHECKING:  # the registries are imported when the command runs
    from noiseproof.registry import Registry


@click.command(name="list")
@click.argument(
    "kind",
    required=False,
    type=click.Choice(["methods", "noise", "models", "datasets", "tasks"]),
)
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
def command(kind: str | None, as_json: bool) -> None:
    """List methods, noise models, models, datasets and tasks with their parameters and
    defaults (installed plugins included)."""
    from noiseproof.data import datasets
    from noiseproof.methods import methods
    from noiseproof.models import models
    from noiseproof.noise import noise_models
    from noiseproof.plugins import load_entry_points
    from noiseproof.tasks import tasks

    load_entry_points()

    tables: dict[str, Registry[Any]] = {
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

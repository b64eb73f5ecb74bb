"""`noiseproof correct`: CorrectNet (Eldebiky et al. 2023) end to end on one model.

1. train the model with one method (default: the config's single method, e.g. `lipschitz`),
   or load it with --checkpoint;
2. evaluate it under the noise model at one level;
3. search where error compensation goes (RL / greedy / exhaustive, or --layers), train the
   compensation under noise with the original weights frozen, and evaluate it on the same chips.

The YAML config is an experiment config (as for `compare`) plus an optional `correct:` section
(noiseproof.methods.correctnet.settings.CorrectConfig); `--set correct.placement.cost_weight=0.5`
works. Each compensated checkpoint records the `correctnet` method that deploys it (the base
method, noise, level and settings) and its layers, so `evaluate`, `attack` and `landscape`
rebuild it through `Method.restore`.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import click

from noiseproof import logs
from noiseproof.commands.options import (
    build_config,
    common_options,
    numbers,
    split_list,
)
from noiseproof.errors import NoiseproofError
from noiseproof.outputs import locks_output


@click.command(name="correct")
@common_options
@click.option("--method", help="Training method of the base model (default: the config's one).")
@click.option("--checkpoint", type=click.Path(), help="Start from this checkpoint, no training.")
@click.option("--level", type=float, help="Noise level (default: the config's first level).")
@click.option("--transfers", type=int, help="Simulated chips for the test evaluation.")
@click.option(
    "--placement",
    help="Searches, comma-separated: rl, greedy, exhaustive; 'none' for no compensation.",
)
@click.option("--layers", help="Compensate exactly these layers (comma-separated), no search.")
@click.option(
    "--out", type=click.Path(), default="runs/correct", show_default=True, help="Output folder."
)
@locks_output("out")
def command(**opts: Any) -> None:
    """CorrectNet: Lipschitz-regularised training, then learned error compensation.

    Trains (or loads) one model, evaluates it under noise, places compensation modules by
    reinforcement learning (and/or greedy/exhaustive search), trains them under noise with the
    original weights frozen, and reports accuracy as % of the noise-free accuracy and the
    overhead. Writes results.json, the base checkpoint and one checkpoint per placement.
    """
    from noiseproof.atomic import write_json_atomic
    from noiseproof.experiments.jobs import run_task, train_and_save
    from noiseproof.methods.correctnet.compensation import Compensated
    from noiseproof.methods.correctnet.layers import check_layers
    from noiseproof.methods.correctnet.pipeline import correct
    from noiseproof.restore import model_from_checkpoint
    from noiseproof.settings import RunSettings
    from noiseproof.training.checkpoints import load_checkpoint, save_checkpoint

    raw, assignments, settings = split_config(opts["config_file"], opts["assignments"])
    if opts["placement"]:
        names = split_list(opts["placement"]) or []
        names = [] if names == ["none"] else names
        bad = [n for n in names if n not in ("rl", "greedy", "exhaustive")]
        if bad:
            raise NoiseproofError(
                f"--placement: unknown search {bad[0]!r} (rl, greedy, exhaustive, none)"
            )
        placement = settings.placement.model_copy(update={"strategies": tuple(names)})
        settings = settings.model_copy(update={"placement": placement})
    config = build_config(
        None,
        {
            "dataset": opts["dataset"],
            "model": opts["model"],
            "noise": split_list(opts["noise"]),
            "methods": [opts["method"]] if opts["method"] else None,
            "levels": numbers(None if opts["level"] is None else str(opts["level"]), "--level"),
            "transfers": opts["transfers"],
            "epochs": opts["epochs"],
            "seeds": numbers(opts["seed"], "--seed", int),
            "device": opts["device"],
        },
        assignments,
        base=copy.deepcopy(raw),
    )
    if len(config.seeds) != 1:
        raise NoiseproofError("correct takes one seed: use --seed")
    seed, noise_entry = config.seeds[0], config.noise[0]
    noise = noise_entry.model.with_level(config.levels_of(noise_entry)[0])
    out = Path(opts["out"])
    run = RunSettings.from_config(config)  # the device resolved once
    assert run.device is not None  # from_config resolves it
    data = config.dataset.load().to(run.device)  # moved once
    layers = split_list(opts["layers"])
    if layers is not None and not opts["checkpoint"]:  # refuse before training, not after
        check_layers(config.model.create(data.input_shape, data.num_outputs), layers)
    if opts["checkpoint"]:
        state, meta = load_checkpoint(opts["checkpoint"])
        model = model_from_checkpoint(state, meta, run.device)
        if isinstance(model, Compensated):
            raise NoiseproofError(
                f"{opts['checkpoint']} is already compensated: give the base model's checkpoint"
            )
        logs.info(f"loaded {opts['checkpoint']} ({meta.get('label', meta['method']['name'])})")
    else:
        if len(config.methods) != 1:
            raise NoiseproofError("correct trains one method: use --method (e.g. lipschitz)")
        model, meta = train_and_save(
            config,
            config.methods[0],
            data,
            out / "model.pt",
            noise=noise,
            seed=seed,
            task=run_task(config, data),
            settings=run,
            progress=not opts["no_progress"],
            log=logs.info,
        )
    if layers is not None:
        check_layers(model, layers)
    results, trained = correct(
        model,
        data,
        noise,
        settings,
        transfers=config.transfers,
        selection=config.chip,
        seed=seed,
        batch_size=config.eval_batch_size,
        layers=layers,
        log=click.echo,
    )
    results["method"] = meta.get("method")
    results["train_seconds"] = meta.get("train_seconds")
    results["best_epoch"] = meta.get("best_epoch")
    results["config"] = config.to_dict()
    results["correct"] = settings.model_dump(mode="json")
    for label, wrapped in trained.items():
        save_checkpoint(
            out / f"compensated-{label}.pt",
            wrapped.state_dict(),
            compensated_meta(meta, label, results["placements"][label], noise, settings),
        )
    write_json_atomic(out / "results.json", results)
    logs.info(f"wrote {out / 'results.json'}")


def split_config(
    config_file: str | None, assignments: tuple[str, ...]
) -> tuple[dict[str, Any], tuple[str, ...], Any]:
    """Default <- YAML (deep merge); its 'correct' section (and --set correct.* items) split off.

    Returns (raw experiment config, the other --set assignments, validated CorrectConfig).
    """
    from noiseproof.config import apply_override, default_config, read_yaml
    from noiseproof.methods.correctnet.settings import CorrectConfig
    from noiseproof.registry import validated
    from noiseproof.yamlio import deep_merge

    raw = default_config()
    if config_file:
        raw = deep_merge(raw, read_yaml(config_file))
    section = {"correct": raw.pop("correct", None) or {}}
    rest = []
    for assignment in assignments:
        if assignment.strip().startswith("correct."):
            apply_override(section, assignment)
        else:
            rest.append(assignment)
    if not isinstance(section["correct"], dict):
        raise NoiseproofError("config: 'correct' must be a mapping of settings")
    settings = validated(CorrectConfig, "config correct", **section["correct"])
    return raw, tuple(rest), settings


def compensated_meta(
    meta: dict[str, Any], label: str, placement: dict[str, Any], noise: Any, settings: Any
) -> dict[str, Any]:
    """The base model's checkpoint metadata, as the `correctnet` method that deploys this
    compensation would have written it: its spec (base method, noise, level, strategy or
    given layers, settings) and the finish record `restore` rebuilds the wrapper from."""
    given = label == "given"
    method = {
        "name": "correctnet",
        "base": meta["method"],
        "noise": noise.spec(),
        "level": noise.level,
        "strategy": "rl" if given else label,
        "layers": placement["layers"] if given else None,
        "correct": settings.model_dump(mode="json"),
    }
    finish = {key: placement[key] for key in ("strategy", "layers", "overhead", "training")}
    return {**meta, "method": method, "finish": {**finish, "noise": noise.spec()}}

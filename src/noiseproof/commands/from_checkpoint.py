"""The config an evaluation of a saved checkpoint starts from, and what it may not change.

The model, the method (with its label) and the training settings describe the weights in the
file: a config file or --set that changes them would evaluate something that was never trained,
so it is refused; so does the task it was trained for. Data, noise, levels, transfers, seeds
and the chip selection are free.
"""

from __future__ import annotations

import json
from typing import Any

from noiseproof.config import ExperimentConfig, default_config
from noiseproof.errors import NoiseproofError
from noiseproof.tasks import Task

OWNED = ("model", "methods", "train", "task")
"""Config keys that come from the checkpoint and cannot be overridden."""


def checkpoint_label(meta: dict[str, Any]) -> str:
    """The label a checkpoint's method is reported under (its method's name by default)."""
    return meta.get("label") or meta["method"]["name"]


def checkpoint_base(meta: dict[str, Any]) -> dict[str, Any]:
    """The built-in default config with the checkpoint's dataset, model, method, train and chip;
    for a calibrated chip (`noiseproof calibrate`), which holds the weights as programmed, no
    noise on top: relative_gaussian at level 0 (exactly the weights), one transfer."""
    base = default_config()
    base.update(
        dataset=meta["dataset"],
        model=meta["model"],
        methods=[{**meta["method"], "label": checkpoint_label(meta)}],
        chip=meta["chip"],
    )
    if meta.get("train") is not None:
        base["train"] = meta["train"]
    if meta.get("task") is not None:
        base["task"] = meta["task"]
    if meta.get("calibration") is not None:  # it holds one programmed chip: no new noise
        base.update(noise=["relative_gaussian"], levels=[0.0], transfers=1)
    return base


def short(spec: Any) -> str:
    """A component spec in a few words: its name, or compact JSON cut at 80 characters."""
    if isinstance(spec, dict) and set(spec) == {"name"}:
        spec = spec["name"]
    if isinstance(spec, str):
        return repr(spec)
    text = json.dumps(spec, sort_keys=True, default=str)
    return text if len(text) <= 80 else text[:77] + "..."


def owned_parts(config: ExperimentConfig) -> dict[str, Any]:
    """The checkpoint-owned parts of a validated config, as comparable plain values."""
    return {
        "model": config.model.spec(),
        "methods": [{**m.method.spec(), "label": m.label} for m in config.methods],
        "train": config.train.model_dump(mode="json"),
        "task": config.task.spec() if isinstance(config.task, Task) else config.task,
    }


def refuse_owned_changes(config: ExperimentConfig, base: dict[str, Any]) -> None:
    """NoiseproofError naming the first key of `OWNED` on which `config` differs from `base`."""
    given, saved = owned_parts(config), owned_parts(ExperimentConfig.parse(base))
    for key in OWNED:
        if given[key] != saved[key]:
            mine, theirs = given[key], saved[key]
            if key != "train" and len(mine) == len(theirs) == 1 and isinstance(mine, list):
                mine, theirs = mine[0], theirs[0]
            if isinstance(mine, dict) and mine.get("name") != theirs.get("name"):
                mine, theirs = mine.get("name"), theirs.get("name")
            raise NoiseproofError(
                f"'{key}' comes from the checkpoint ({short(theirs)}) and cannot be changed to "
                f"{short(mine)}: remove it from --config/--set"
            )

"""The experiment configuration: YAML in, validated objects out, one clear line on any mistake."""

from __future__ import annotations

import math
from collections.abc import Mapping
from importlib import resources
from pathlib import Path
from typing import Annotated, Any, Literal, Self

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from noiseproof.analog import AnalogForward, ir_drop_window
from noiseproof.calibration.settings import CalibrationConfig, check_calibration
from noiseproof.chip import ChipSelection
from noiseproof.data import datasets
from noiseproof.data.base import DatasetSpec
from noiseproof.devices import DEVICE_HELP, resolve_device
from noiseproof.errors import NoiseproofError, elide
from noiseproof.evaluation.attack import AttackConfig
from noiseproof.evaluation.landscape import LandscapeConfig
from noiseproof.export.cost import CostConfig
from noiseproof.filenames import level_name, safe_name
from noiseproof.methods import Method, methods
from noiseproof.models import models
from noiseproof.models.base import ModelSpec
from noiseproof.noise import NoiseModel, noise_models
from noiseproof.precision import Precision
from noiseproof.registry import describe_validation_error
from noiseproof.tasks import AUTO, Task, tasks
from noiseproof.training.config import TrainConfig
from noiseproof.yamlio import deep_merge, load_yaml


def _split_label(spec: Any) -> tuple[str | None, Any]:
    """Take an optional 'label' key off a component mapping: (label or None, the rest)."""
    if isinstance(spec, Mapping):
        spec = dict(spec)
        return spec.pop("label", None), spec
    return None, spec


class MethodEntry(BaseModel):
    """A training method with the label it is reported under (default: its name)."""

    model_config = ConfigDict(frozen=True, arbitrary_types_allowed=True)
    label: str
    method: Method

    @classmethod
    def parse(cls, spec: Any) -> Self:
        label, spec = _split_label(spec)
        method = methods.create(spec)
        return cls(label=label or method.registered_name, method=method)

    def spec(self) -> dict[str, Any]:
        """The method's spec, with its label when that is not the method's name (what a config
        file holds, and `parse` takes back)."""
        return _labelled(self.label, self.method.spec(), self.method.registered_name)


class NoiseEntry(BaseModel):
    """A noise model with its label and, optionally, its own sweep levels."""

    model_config = ConfigDict(frozen=True, arbitrary_types_allowed=True)
    label: str
    model: NoiseModel
    levels: tuple[float, ...] | None = None

    @classmethod
    def parse(cls, spec: Any) -> Self:
        label, spec = _split_label(spec)
        levels = spec.pop("levels", None) if isinstance(spec, dict) else None
        model = noise_models.create(spec)
        label = label or model.registered_name
        if levels is not None:
            levels = check_levels(levels, f"noise {label!r} levels")
        return cls(label=label, model=model, levels=levels)

    def spec(self) -> dict[str, Any]:
        """The noise model's spec, with its label when that is not its name and its own
        levels when it has them (what a config file holds, and `parse` takes back)."""
        levels = {"levels": list(self.levels)} if self.levels is not None else {}
        return _labelled(self.label, self.model.spec(), self.model.registered_name, **levels)


def _labelled(label: str, spec: dict, default: str, **extra: Any) -> dict[str, Any]:
    """`spec` with a 'label' key unless `label` is `default`, and `extra` keys."""
    return {**spec, **({"label": label} if label != default else {}), **extra}


def check_levels(levels: Any, where: str) -> tuple[float, ...]:
    """Sweep levels must be a non-empty list of distinct finite numbers >= 0 whose job file
    names (`filenames.level_name`) differ too: 0.1 and 0.1000001 would share one file."""
    if isinstance(levels, int | float):
        levels = [levels]
    if not isinstance(levels, list | tuple) or not levels:
        raise ValueError(f"{where} must be a non-empty list of numbers")
    out = []
    for level in levels:
        if isinstance(level, bool) or not isinstance(level, int | float):
            raise ValueError(f"{where}: {elide(level)} is not a number")
        if not math.isfinite(level) or level < 0:
            raise ValueError(f"{where}: {level!r} must be finite and >= 0")
        out.append(level)
    named: dict[str, float] = {}
    for level in out:
        name = level_name(level)
        if name not in named:
            named[name] = level
            continue
        other = named[name]
        if other == level:
            raise ValueError(f"{where}: {level!r} is listed twice")
        raise ValueError(
            f"{where}: {other!r} and {level!r} both save as level '{level_name(level)}': "
            "give levels that differ in the first 6 significant digits"
        )
    return tuple(out)


class ExecutorConfig(BaseModel):
    """Who runs the grid's jobs; results never depend on it (a run may resume under another).

    name: 'local' (this process) or 'ray' (a local Ray instance, or the cluster at `address`:
    'auto' or 'host:port'); cpus_per_job / gpus_per_job: each Ray task's resources (fractional
    GPUs allowed); retries: Ray's retries of a failed task; transfers_per_job: cut each
    evaluation's chips into jobs of that many (merged exactly: chip k's draw depends only on
    (seed, noise, level, k)).
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: Literal["local", "ray"] = Field("local", description="local or ray")
    address: str | None = Field(None, description="ray: None starts a local instance")
    cpus_per_job: float = Field(1.0, gt=0, allow_inf_nan=False, description="ray: CPUs per job")
    gpus_per_job: float = Field(0.0, ge=0, allow_inf_nan=False, description="ray: GPUs per job")
    retries: int = Field(2, ge=0, strict=True, description="ray: retries of a failed task")
    transfers_per_job: int | None = Field(
        None, ge=1, strict=True, description="chips per evaluation job (None: all of a level)"
    )


RESULT_FREE_KEYS = ("executor",)
"""Config keys that change how a run is executed, never its numbers (ignored by --resume)."""


class ExperimentConfig(BaseModel):
    """Everything `compare` needs: data, model, methods x noise models x levels x seeds."""

    model_config = ConfigDict(extra="forbid", frozen=True, arbitrary_types_allowed=True)

    dataset: DatasetSpec
    model: ModelSpec
    methods: tuple[MethodEntry, ...] = Field(..., min_length=1)
    noise: tuple[NoiseEntry, ...] = Field(..., min_length=1)
    levels: tuple[float, ...]
    transfers: int = Field(100, ge=1, strict=True)
    seeds: tuple[Annotated[int, Field(strict=True)], ...] = Field((0,), min_length=1)
    train: TrainConfig = TrainConfig()
    chip: ChipSelection = ChipSelection()
    reliability_threshold: float = Field(0.95, gt=0, le=1, strict=True)
    confidence: float = Field(
        0.95, gt=0, lt=1, strict=True, description="level of the intervals and comparisons"
    )
    eval_batch_size: int = Field(2000, ge=1, strict=True)
    attack: AttackConfig | None = None  # targeted attack per trained model (optional)
    landscape: LandscapeConfig | None = None  # loss landscape per trained model (optional)
    device: str = Field("auto", description=DEVICE_HELP)
    eval_precision: Precision = Field(
        "fp32", description="autocast of evaluations: transfers, clean accuracy, attack, landscape"
    )
    executor: ExecutorConfig = ExecutorConfig()
    forward: AnalogForward | None = None  # DAC/ADC/output noise/IR drop of on-chip layers
    cost: CostConfig | None = Field(
        None,
        description="optional: estimate each trained model's energy and latency per inference "
        "on crossbar tiles (into its training record and results.json `cost_estimate`)",
    )
    task: Task | Literal["auto"] = Field(
        "auto", description="what the model is trained and measured for; auto: from the targets"
    )
    calibration: CalibrationConfig | None = Field(
        None,
        description="optional: re-fit every simulated chip's digital parameters after "
        "programming (gains, offsets, norms) and report it beside the uncalibrated chip",
    )

    @field_validator("task", mode="before")
    @classmethod
    def _task(cls, value: Any) -> Task | str:
        return AUTO if value is None or value == AUTO else tasks.create(value)

    @field_validator("device", mode="before")
    @classmethod
    def _device(cls, value: Any) -> str:
        resolve_device(value, "")  # refused here, before anything runs, if not present
        return value.strip().lower()

    @field_validator("dataset", mode="before")
    @classmethod
    def _dataset(cls, value: Any) -> DatasetSpec:
        return datasets.create(value)

    @field_validator("model", mode="before")
    @classmethod
    def _model(cls, value: Any) -> ModelSpec:
        return models.create(value)

    @field_validator("methods", mode="before")
    @classmethod
    def _methods(cls, value: Any) -> tuple[MethodEntry, ...]:
        value = value if isinstance(value, list | tuple) else [value]
        return tuple(MethodEntry.parse(spec) for spec in value)

    @field_validator("noise", mode="before")
    @classmethod
    def _noise(cls, value: Any) -> tuple[NoiseEntry, ...]:
        value = value if isinstance(value, list | tuple) else [value]
        return tuple(NoiseEntry.parse(spec) for spec in value)

    @field_validator("levels", mode="before")
    @classmethod
    def _levels(cls, value: Any) -> tuple[float, ...]:
        return check_levels(value, "levels")

    @field_validator("seeds", mode="before")
    @classmethod
    def _seeds(cls, value: Any) -> Any:
        value = [value] if isinstance(value, int) else value
        if isinstance(value, list | tuple):
            twice = sorted({s for s in value if isinstance(s, int) and list(value).count(s) > 1})
            if twice:
                raise ValueError(f"{twice[0]!r} is listed twice")
        return value

    @model_validator(mode="after")
    def _consistent(self) -> Self:
        for kind, labels in (
            ("methods", [m.label for m in self.methods]),
            ("noise models", [n.label for n in self.noise]),
        ):
            twice = sorted({label for label in labels if labels.count(label) > 1})
            if twice:
                raise ValueError(
                    f"{kind} share the label {twice[0]!r}: give each a distinct 'label'"
                )
            files: dict[str, str] = {}
            for label in labels:
                other = files.setdefault(safe_name(label), label)
                if other != label:
                    raise ValueError(
                        f"{kind} labels {other!r} and {label!r} both save as file name "
                        f"{safe_name(label)!r}: give each a distinct 'label'"
                    )
        for entry in self.noise:
            for level in self.levels_of(entry):
                entry.model.with_level(level)  # raises a one-line error for an invalid level
            if self.forward is not None and self.forward.ir_drop is not None:
                ir_drop_window(self.forward, entry.model)  # one line naming the noise model
        if self.calibration is not None:
            check_calibration(self.calibration, self.forward)
        for method in (entry.method for entry in self.methods):  # one that cannot train in
            method.check_precision(self.train.precision)  # train.precision says so,
            if isinstance(self.task, Task):  # or the task (an inferred one: once data is loaded)
                method.check_task(self.task)
        return self

    def levels_of(self, entry: NoiseEntry) -> tuple[float, ...]:
        """The levels swept for one noise model: its own, else the experiment's."""
        return entry.levels if entry.levels is not None else self.levels

    def method(self, label: str) -> MethodEntry:
        """The method reported under `label` (KeyError naming the labels if there is none)."""
        for entry in self.methods:
            if entry.label == label:
                return entry
        raise KeyError(f"no method labelled {label!r}: {[m.label for m in self.methods]}")

    def noise_entry(self, label: str) -> NoiseEntry:
        """The noise model reported under `label` (KeyError naming the labels if there is
        none), the counterpart of `method(label)`. It is not spelled `noise(label)`:
        `config.noise` is the field holding the tuple of every entry (iterated, indexed and
        written to config.yaml as it is), which a method of that name would replace."""
        for entry in self.noise:
            if entry.label == label:
                return entry
        raise KeyError(f"no noise model labelled {label!r}: {[n.label for n in self.noise]}")

    def sweeps(self) -> list[tuple[str, tuple[tuple[float, NoiseModel], ...]]]:
        """(label, ((level, the noise model set to it), ...)) for every noise model, in
        order: what the grid evaluates (noiseproof.experiments.plan)."""
        return [
            (entry.label, tuple((lv, entry.model.with_level(lv)) for lv in self.levels_of(entry)))
            for entry in self.noise
        ]

    def to_dict(self) -> dict[str, Any]:
        """A plain YAML/JSON-ready dict that `ExperimentConfig.parse` turns back into this."""
        return {
            "dataset": self.dataset.spec(),
            "model": self.model.spec(),
            "methods": [entry.spec() for entry in self.methods],
            "noise": [entry.spec() for entry in self.noise],
            "levels": list(self.levels),
            "transfers": self.transfers,
            "seeds": list(self.seeds),
            "train": self.train.model_dump(mode="json"),
            "chip": self.chip.model_dump(mode="json"),
            "reliability_threshold": self.reliability_threshold,
            **({"confidence": self.confidence} if self.confidence != 0.95 else {}),
            "eval_batch_size": self.eval_batch_size,
            "device": self.device,
            "eval_precision": self.eval_precision,
            "executor": self.executor.model_dump(mode="json"),
            **({"task": self.task.spec()} if isinstance(self.task, Task) else {}),
            **{
                key: part.model_dump(mode="json")
                for key, part in (("attack", self.attack), ("landscape", self.landscape))
                if part is not None
            },
            **({"cost": self.cost.to_dict()} if self.cost is not None else {}),
            **({"forward": self.forward.model_dump(mode="json")} if self.forward else {}),
            **(
                {"calibration": self.calibration.model_dump(mode="json")}
                if self.calibration is not None
                else {}
            ),
        }

    @classmethod
    def parse(cls, raw: Mapping[str, Any]) -> Self:
        """Validate a raw mapping; any problem becomes one NoiseproofError line."""
        if not isinstance(raw, Mapping):
            raise NoiseproofError(f"config must be a mapping of keys, got {type(raw).__name__}")
        try:
            return cls(**raw)
        except ValidationError as error:
            raise NoiseproofError(describe_validation_error("config", error)) from None
        except ValueError as error:  # raised inside a 'before' validator
            raise NoiseproofError(f"config: {error}") from None


def default_config() -> dict[str, Any]:
    """The built-in `noiseproof compare` configuration (presets/default.yaml) as a raw mapping."""
    text = resources.files("noiseproof").joinpath("presets/default.yaml").read_text()
    return load_yaml(text)


def read_yaml(path: str | Path) -> dict[str, Any]:
    """A YAML config file as a mapping; NoiseproofError if missing, malformed or not a mapping."""
    path = Path(path)
    if not path.is_file():
        raise NoiseproofError(f"config file not found: {path}")
    try:
        text = path.read_bytes().decode("utf-8")
    except UnicodeDecodeError as error:
        raise NoiseproofError(
            f"config file {path} is not UTF-8 text (byte {error.start}): is it a YAML file?"
        ) from None
    try:
        raw = load_yaml(text)
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(error, "problem", None) or "invalid YAML"
        raise NoiseproofError(f"config file {path} is not valid YAML{where}: {problem}") from None
    if not isinstance(raw, dict):
        raise NoiseproofError(f"config file {path} must hold a mapping of keys")
    return raw


def apply_override(raw: dict[str, Any], assignment: str) -> None:
    """Merge 'key.sub=value' (value parsed as YAML) into `raw` in place, by `deep_merge`: the
    same rules as a config file, so `--set dataset.val_fraction=0.2` and a file holding
    `dataset: {val_fraction: 0.2}` give the same config."""
    key, sep, text = assignment.partition("=")
    if not sep or not key.strip():
        raise NoiseproofError(f"--set expects key=value, got {assignment!r}")
    try:
        value = load_yaml(text)
    except yaml.YAMLError:
        raise NoiseproofError(f"--set {key}: value {text!r} is not valid YAML") from None
    parts = key.strip().split(".")
    if not all(part.strip() for part in parts):
        raise NoiseproofError(f"--set {key}: empty part in the dotted key")
    for part in reversed(parts):
        value = {part.strip(): value}
    merged = deep_merge(raw, value)
    raw.clear()
    raw.update(merged)

"""`noiseproof.compare`: a method comparison on the user's own module and data, from Python.

The same grid as the `compare` command (methods x seeds trainings, then methods x noise models x
levels x seeds Monte Carlo evaluations), run in memory by default: no registered wrapper class,
no output folder. With `out=` it writes the command's folder (results.json, CSV, report).
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from pydantic import ConfigDict
from torch import nn
from torch.utils.data import Dataset as TorchDataset

from noiseproof.config import ExperimentConfig
from noiseproof.data.base import Dataset, DatasetSpec
from noiseproof.devices import check_device_spec, model_device, resolve_device
from noiseproof.evaluation.arguments import check_outputs_fit
from noiseproof.evaluation.vectorised import PROBE_EXAMPLES
from noiseproof.experiments.compare import run_compare
from noiseproof.experiments.decision import recommend
from noiseproof.experiments.jobs import build_seeded, run_task
from noiseproof.experiments.results import flat_row, summary_rows, text_table
from noiseproof.inputs import to
from noiseproof.models.base import ModelSpec
from noiseproof.settings import RunSettings
from noiseproof.training.config import TrainConfig

if TYPE_CHECKING:
    import pandas


class GivenData(DatasetSpec):
    """A Dataset the caller already holds (not registered: it cannot come from a file)."""

    model_config = ConfigDict(extra="forbid", frozen=True, arbitrary_types_allowed=True)
    registered_name = "given"
    data: Dataset

    def load(self) -> Dataset:
        """The dataset as given."""
        return self.data

    def spec(self) -> dict:
        """{'name': 'given', 'dataset': its name} (the tensors are not serialised)."""
        return {"name": self.registered_name, "dataset": self.data.name}


class GivenModel(ModelSpec):
    """The caller's module (each training starts from a deep copy of it) or a function
    building one (called once per (method, seed) under a seed derived from that seed)."""

    model_config = ConfigDict(extra="forbid", frozen=True, arbitrary_types_allowed=True)
    registered_name = "given"
    source: nn.Module | Callable[[], nn.Module]

    def build(self, input_shape: Any, num_outputs: int) -> nn.Module:
        """A deep copy of the module, or what the function returns (checked to be a module)."""
        if isinstance(self.source, nn.Module):
            return copy.deepcopy(self.source)
        built = self.source()
        if not isinstance(built, nn.Module):
            raise TypeError(f"model() must return a torch.nn.Module, got {type(built).__name__}")
        return built

    def spec(self) -> dict:
        """{'name': 'given', 'class': the module's class name}, plus `output` when set."""
        cls = self.source if not isinstance(self.source, nn.Module) else type(self.source)
        out = {"name": self.registered_name, "class": getattr(cls, "__name__", str(cls))}
        return out | ({"output": self.output} if self.output is not None else {})


@dataclass
class CompareResults:
    """What `compare` measured: one record per (method, noise, level, seed) job, the training
    logs, the trained modules by (method label, seed), and the resolved config.

    >>> import noiseproof as nf
    >>> data = nf.load_dataset("digits")
    >>> results = nf.compare(model=lambda: nf.build_model("mlp", data.input_shape, 10),
    ...                      data=data, methods=["standard"], levels=[0.2], transfers=5,
    ...                      train={"epochs": 1})
    >>> len(results.jobs), list(results.models), "accuracy_mean" in results.to_pandas()
    (1, [('standard', 0)], True)
    """

    jobs: list[dict[str, Any]]
    trainings: list[dict[str, Any]]
    models: dict[tuple[str, int], nn.Module] = field(repr=False)
    config: dict[str, Any] = field(repr=False)

    def to_pandas(self) -> pandas.DataFrame:
        """One row per job (the columns of results.csv); needs pandas (extra `pandas`)."""
        try:
            import pandas
        except ImportError:
            raise ImportError(
                "CompareResults.to_pandas needs pandas: pip install 'noiseproof[pandas]'"
            ) from None
        return pandas.DataFrame([flat_row(record) for record in self.jobs])

    def table(self) -> str:
        """The accuracy tables the `compare` command prints, one per noise model."""
        return "\n\n".join(
            f"{noise}\n{text_table(header, rows)}"
            for noise, header, rows in summary_rows(self.jobs)
        )

    def recommend(
        self,
        noise: str,
        level: float,
        *,
        within: float | None = None,
        by: Literal["mean", "worst"] = "mean",
        max_train_cost: float | None = None,
        confidence: float = 0.95,
    ) -> dict[str, Any]:
        """The method to deploy at (noise, level), as `noiseproof recommend` says it
        (noiseproof.experiments.decision.recommend): {'method', 'lines', 'comparison'}.

        Example: ``results.recommend("relative_gaussian", 0.2)["method"]``."""
        return recommend(
            {"jobs": self.jobs, "trainings": self.trainings},
            noise,
            level,
            within=within,
            by=by,
            max_train_cost=max_train_cost,
            confidence=confidence,
        )

    def __str__(self) -> str:
        return self.table()


def as_dataset(data: Any) -> Dataset:
    """A noiseproof Dataset from a Dataset, a (train, test) pair of torch datasets, or the
    tensors (x_train, y_train, x_test, y_test)."""
    if isinstance(data, Dataset):
        return data
    pair = isinstance(data, tuple | list) and len(data) == 2
    if pair and all(isinstance(part, TorchDataset) for part in data):
        return Dataset.from_torch(*data)
    if isinstance(data, tuple | list) and len(data) == 4:
        return Dataset.from_tensors(*data)
    raise TypeError(
        "data must be a noiseproof Dataset, (train, test) torch datasets or the tensors "
        f"(x_train, y_train, x_test, y_test), got {type(data).__name__}"
    )


def _listed(value: Any, name: str) -> list[Any]:
    if isinstance(value, str | Mapping) or not isinstance(value, Sequence):
        return [value]
    if not value:
        raise ValueError(f"{name} must not be empty")
    return list(value)


def check_model_fits(config: ExperimentConfig) -> None:
    """ValueError/TypeError naming data.x_train or data.y_train when the model cannot run on
    the training inputs or its outputs do not fit the task's targets (feature size, dtype,
    labels beyond the outputs: noiseproof.evaluation.arguments.check_outputs_fit), before any
    work: the model the first (method, seed) training starts from (`build_seeded`: a copy of
    the module, or the function's under its derived seed) probed on the first examples."""
    data = config.dataset.load()
    task = run_task(config, data)
    model = build_seeded(config.model, data, config.seeds[0])
    example = to(data.example(PROBE_EXAMPLES), model_device(model))
    check_outputs_fit(model, None, example, data.y_train, task, "data.x_train", "data.y_train")


def compare(
    model: nn.Module | Callable[[], nn.Module],
    data: Any,
    methods: Any = ("standard", "noise_injection"),
    noise: Any = "relative_gaussian",
    levels: Sequence[float] = (0.0, 0.1, 0.2, 0.3),
    *,
    transfers: int = 100,
    seeds: Sequence[int] | int = (0,),
    train: TrainConfig | Mapping[str, Any] | None = None,
    output: str | int | None = None,
    out: str | Path | None = None,
    resume: bool = False,
    progress: bool = False,
    settings: RunSettings | None = None,
    **keys: Any,
) -> CompareResults:
    """Train `model` with each method and measure each under noise over simulated chips.

    model: an nn.Module (every (method, seed) trains a deep copy: all start from its weights)
    or a function returning a fresh one (called per (method, seed) under a derived seed, and
    once before, for `check_model_fits`).
    data: see `as_dataset`. methods / noise: names, {'name': ..., **params} mappings or built
    components, one or several ('label' keys rename them). levels: the sweep. train: a
    TrainConfig or its fields. output: the key/index of the logits when the model returns a
    dict/tuple. out: None keeps everything in memory; a folder writes what `noiseproof
    compare` writes (and `resume` continues it).
    Further keyword arguments `keys` are experiment config keys, among them: device ('auto':
    CUDA when available, else CPU; 'cpu', 'cuda', 'cuda:N', 'mps' or a torch.device;
    ValueError if it is not there; the trained `.models` live on it), chip (which tensors are
    on the chip: a ChipSelection or its fields), task (what the models are trained and
    measured for: noiseproof.tasks 'classification', 'regression', 'token_classification',
    'language_model', a mapping with settings, or 'auto': inferred from the targets),
    eval_precision, eval_batch_size, forward, reliability_threshold, attack.
    settings: a noiseproof.settings.RunSettings, standing for the keys device, eval_precision,
    chip, forward, eval_batch_size and task (`RunSettings.config_keys`); those keys given as
    keyword arguments too replace its fields.
    Returns CompareResults (`.to_pandas()`, `.models`, `.table()`).
    A model that cannot run on the data, or whose outputs do not fit its targets, is refused
    before any training or writing (`check_model_fits`: ValueError naming data.x_train or
    data.y_train).

    >>> import noiseproof as nf
    >>> data = nf.load_dataset("digits")
    >>> results = nf.compare(model=lambda: nf.build_model("mlp", data.input_shape, 10),
    ...                      data=data, methods=["standard", "noise_injection"],
    ...                      levels=[0, 0.5], transfers=10, train={"epochs": 1})
    >>> table = results.to_pandas()
    >>> table[["method", "level"]].values.tolist()
    [['standard', 0.0], ['standard', 0.5], ['noise_injection', 0.0], ['noise_injection', 0.5]]
    """
    if settings is not None and not isinstance(settings, RunSettings):
        raise TypeError(f"settings must be a RunSettings or None, got {type(settings).__name__}")
    keys = {**(settings.config_keys() if settings is not None else {}), **keys}
    if "chip" in keys and keys["chip"] is None:  # None: the default selection
        del keys["chip"]
    if "device" in keys:  # checked here, so that the ValueError names the argument
        resolve_device(keys["device"], "device")
        keys["device"] = check_device_spec(keys["device"])
    if not isinstance(model, nn.Module) and not callable(model):
        raise TypeError(f"model must be an nn.Module or a function building one, got {model!r}")
    if out is not None and (not isinstance(out, str | Path) or not str(out).strip()):
        raise ValueError(f"out must be a folder path or None, got {out!r}")
    raw = {
        "dataset": GivenData(data=as_dataset(data)),
        "model": GivenModel(source=model, output=output),
        "methods": _listed(methods, "methods"),
        "noise": _listed(noise, "noise"),
        "levels": list(levels) if isinstance(levels, Sequence) else levels,
        "transfers": transfers,
        "seeds": [seeds] if isinstance(seeds, int) else list(seeds),
        **({"train": train} if train is not None else {}),
        **keys,
    }
    config = ExperimentConfig.parse(raw)
    check_model_fits(config)
    models: dict[tuple[str, int], nn.Module] = {}
    results = run_compare(
        config,
        out,
        resume=resume,
        progress=progress,
        log=lambda _: None,
        trained=lambda label, seed, module: models.__setitem__((label, seed), module),
    )
    return CompareResults(results["jobs"], results["trainings"], models, results["config"])

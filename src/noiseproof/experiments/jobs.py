"""The work of the grid's two kinds of job: train one (method, seed) model (and save it);
evaluate it over a range of chips at one (noise, level) and summarise the outcome.

Each function is pure in its arguments (same arguments, same numbers) and returns what it
produced; noiseproof.experiments.grid decides where it is stored.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Unpack

import torch
from torch import nn

from noiseproof.data.base import Dataset
from noiseproof.data.streaming import StreamedSplit
from noiseproof.devices import model_device
from noiseproof.evaluation.metrics import accuracy_summary, metric_summaries, reliability
from noiseproof.evaluation.transfers import TransferOptions, TransferResult, run_transfers
from noiseproof.flops import flop_counter
from noiseproof.methods.base import Method
from noiseproof.models.base import ModelSpec
from noiseproof.noise.base import NoiseModel
from noiseproof.plugins import used_plugins
from noiseproof.seeding import derive_seed, generator
from noiseproof.settings import RunSettings, from_options
from noiseproof.tasks import AUTO, Task, create_task, infer_task
from noiseproof.training.checkpoints import save_checkpoint
from noiseproof.training.config import TrainConfig
from noiseproof.training.trainer import TRAINING_NAMES, TrainOptions, train

if TYPE_CHECKING:
    from noiseproof.config import ExperimentConfig, MethodEntry


def build_seeded(spec: ModelSpec, data: Dataset, seed: int) -> nn.Module:
    """A fresh model whose initial weights depend only on `seed` (same start for every method),
    built on the CPU on purpose (the same start on every device; training moves it)."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(derive_seed(seed, "init"))
        return spec.create(data.input_shape, data.num_outputs)


def finish_counted(
    method: Method,
    model: nn.Module,
    data: Dataset,
    noise: NoiseModel | None,
    *,
    cost: dict[str, Any],
    **options: Any,
) -> tuple[nn.Module, dict[str, Any] | None, dict[str, Any]]:
    """`method.finish` (its model and record) and the training's `cost` with that stage's
    included: where it does something (CorrectNet's placement search and compensation
    training), its wall seconds and every FLOP it makes, counted throughout by torch's counter
    (noiseproof.flops; the seconds include the counter's dispatch), go to cost['finish'] and
    are added to cost['seconds'] and cost['flops']."""
    started = time.perf_counter()
    with flop_counter() as counter:
        model, finished = method.finish(model, data, noise, **options)
    if not finished:
        return model, finished, cost
    stage = {"seconds": time.perf_counter() - started, "flops": int(counter.get_total_flops())}
    total = {
        key: cost[key] + stage[key] for key in ("seconds", "flops") if cost.get(key) is not None
    }
    return model, finished, {**cost, **total, "finish": stage}


def run_task(config: ExperimentConfig, data: Dataset) -> Task:
    """The task of a run: the config's `task`, or with 'auto' the one its data's targets say
    (noiseproof.tasks.infer_task; `describe_task` says which in a log line); every method of
    the config must be able to train it (one line otherwise)."""
    x = None if isinstance(data.x_train, StreamedSplit) else data.x_train  # not streamed
    task = create_task(config.task, y=data.y_train, x=x, announce=False)
    for entry in config.methods:
        entry.method.check_task(task)
    return task


def describe_task(task: Task, spec: Any, data: Dataset) -> str:
    """The task in a few words for a log line: its name, and why when it was inferred
    ('regression (inferred from floating-point targets ...; set task to change it)')."""
    if spec != AUTO:
        return task.registered_name
    x = None if isinstance(data.x_train, StreamedSplit) else data.x_train  # not streamed
    _, why = infer_task(data.y_train, x)
    return f"{task.registered_name} (inferred from {why}; set 'task' to change it)"


def train_job(
    model_spec: ModelSpec,
    data: Dataset,
    method: Method,
    train_config: TrainConfig,
    *,
    noise: NoiseModel | None,
    seed: int,
    settings: RunSettings | None = None,
    label: str | None = None,
    dataset_spec: dict[str, Any] | None = None,
    progress: bool = True,
    log: Callable[[str], None] = lambda _: None,
    callbacks: Sequence[Any] = (),
    **options: Unpack[TrainOptions],
) -> tuple[nn.Module, dict[str, Any]]:
    """Train one model on the settings' device (None: auto) for their task (None: inferred
    from the data); return it (best-val weights, on that device) and the metadata its
    checkpoint keeps (the task, the data's vocabulary for a token model).

    settings: noiseproof.settings.RunSettings (device, chip selection, analog forward, task),
    or built from `train`'s keyword arguments selection, device, analog and task.
    label: the name results report the method under (default: the method's name);
    dataset_spec: the dataset's spec, so `evaluate` can reload it (default: its name only).
    The method's `finish` runs after training (e.g. a method adding modules): the returned
    model is what it gives, and its record is kept under 'finish', from which the method's
    `restore` rebuilds that model when the checkpoint is loaded
    (noiseproof.restore.model_from_checkpoint).
    """
    settings = from_options(settings, options, TRAINING_NAMES)
    if settings.device is None:  # a job trains on 'auto', not where the fresh model is
        settings = RunSettings.build(settings, device="auto")
    selection, task = settings.selection, settings.task
    model = build_seeded(model_spec, data, seed)
    started = time.perf_counter()
    result = train(
        model,
        data,
        method,
        train_config,
        noise=noise,
        seed=seed,
        progress=progress,
        callbacks=callbacks,
        settings=settings,
    )
    model, finished, cost = finish_counted(
        method, model, data, noise, selection=selection, seed=seed, log=log, cost=result.cost
    )
    meta: dict[str, Any] = {
        "model": model_spec.spec(),
        "input_shape": list(data.input_shape),
        "num_outputs": data.num_outputs,
        "label": label or method.registered_name,
        "dataset": dataset_spec or {"name": data.name},
        "method": method.spec(),
        "train": train_config.model_dump(mode="json"),
        "train_noise": None if noise is None else noise.spec(),
        "chip": selection.model_dump(mode="json"),
        "seed": seed,
        "history": result.history,
        "best_epoch": result.best_epoch,
        **({"best_val_accuracy": result.best_val} if result.val_metric == "accuracy" else {}),
        "val_metric": result.val_metric,
        "best_val": result.best_val,
        "train_seconds": time.perf_counter() - started,
        "cost": cost,
    }
    if result.ranges is not None:  # learned input ranges: evaluation runs with them
        meta["analog_ranges"] = result.ranges.to_dict()
    if task is not None:
        meta["task"] = task.spec()
    if data.vocabulary is not None:
        meta["vocabulary"] = data.vocabulary
    if finished:
        meta["finish"] = finished
    if used := used_plugins(model_spec, method, noise, selection, dataset=meta["dataset"]):
        meta["plugins"] = used  # a reload names what it needs (noiseproof.plugins)
    return model, meta


def train_and_save(
    config: ExperimentConfig,
    entry: MethodEntry,
    data: Dataset,
    path: str | Path | None,
    *,
    noise: NoiseModel | None,
    seed: int,
    task: Task,
    settings: RunSettings | None = None,
    progress: bool = True,
    log: Callable[[str], None] = lambda _: None,
    callbacks: Sequence[Any] = (),
    inputs: dict[str, Any] | None = None,
) -> tuple[nn.Module, dict[str, Any]]:
    """`train_job` for one method entry of an experiment config, for `task`, with the run's
    `settings` (default: `RunSettings.from_config(config)`: its device, chip, forward), its
    checkpoint written to `path` (unless None; the weights saved on the CPU, so it loads
    anywhere) and one line logged (label, seed, best validation metric and epoch, time).
    inputs: what the training was computed from (noiseproof.experiments.provenance), kept in
    the metadata under 'inputs'."""
    model, meta = train_job(
        config.model,
        data,
        entry.method,
        config.train,
        noise=noise,
        seed=seed,
        settings=(settings or RunSettings.from_config(config)).replace(task=task),
        label=entry.label,
        dataset_spec=config.dataset.spec(),
        progress=progress,
        log=log,
        callbacks=callbacks,
    )
    if inputs is not None:
        meta["inputs"] = inputs
    if path is not None:
        save_checkpoint(path, model.state_dict(), meta)
    metric = task.primary
    best = f"{100 * meta['best_val']:.2f}%" if metric.percent else f"{meta['best_val']:.4g}"
    shown = "" if metric.name == "accuracy" else f"{metric.name} "
    log(
        f"trained {entry.label} seed {seed}: best val {shown}{best} "
        f"at epoch {meta['best_epoch']} ({meta['train_seconds']:.1f} s)"
        + (f" -> {path}" if path is not None else "")
    )
    return model, meta


def evaluate_chips(
    model: nn.Module,
    data: Dataset,
    noise: NoiseModel,
    *,
    transfers: int,
    seed: int,
    noise_label: str,
    settings: RunSettings | None = None,
    first_chip: int = 0,
    progress: bool = False,
    **options: Unpack[TransferOptions],
) -> TransferResult:
    """Monte Carlo over chips [first_chip, first_chip + transfers) at one noise level, with
    the run's `settings` (or `run_transfers`' keyword arguments: selection, batch_size,
    precision, analog, task), measured by their task (None: inferred from the test targets).

    The noise stream depends on (seed, noise label, level) and the device only, so every
    method at a level sees the same draws where parameter shapes agree (common random
    numbers), and chip k is the same chip whichever range it is evaluated in (a shard of a
    larger run gives exactly that run's per-chip accuracies). Runs where the model is (its
    generator made there), under the evaluation precision, with the analog forward effects.
    """
    gen = generator(seed, "transfers", noise_label, noise.level, device=model_device(model))
    return run_transfers(
        model,
        noise,
        data.x_test,
        data.y_test,
        transfers,
        gen,
        settings=settings,
        first_chip=first_chip,
        progress=progress,
        **options,
    )


def summary_record(
    result: TransferResult,
    noise: NoiseModel,
    *,
    noise_label: str,
    seed: int,
    clean: dict[str, float],
    threshold: float,
    seconds: float,
) -> dict[str, Any]:
    """One evaluation's result record (no labels) from all its chips' outcomes: the task, each
    of its metrics over the chips (`metrics`: statistics; `per_chip`: chip k's value at index
    k, for chip-paired comparisons) and without noise (`clean`); a classifier's record also
    keeps `accuracy` and `clean_accuracy`."""
    task = result.task
    classifier = task.registered_name == "classification"
    summaries = metric_summaries(result)
    return {
        "noise": noise_label,
        "level": noise.level,
        "seed": seed,
        "transfers": result.transfers,
        **({"clean_accuracy": clean["accuracy"]} if classifier else {}),
        **({"accuracy": accuracy_summary(result.accuracy)} if classifier else {}),
        "task": task.spec(),
        "metrics": summaries,
        "per_chip": {name: values.tolist() for name, values in result.metrics.items()},
        "clean": clean,
        "reliability": reliability(result, threshold),
        "per_example_reliability_histogram": reliability_histogram(
            result.correct_counts if result.mask is None else result.correct_counts[result.mask],
            result.transfers,
        ),
        "noise_spec": noise.spec(),
        "seconds": seconds,
    }


def reliability_histogram(counts: torch.Tensor, transfers: int, bins: int = 20) -> list[int]:
    """Counts of test examples per bin of per-example reliability (share of transfers right)."""
    share = counts.double() / transfers
    return torch.histc(share, bins=bins, min=0.0, max=1.0).long().tolist()

"""The one training loop: any method, model and chip selection; best-validation weights kept."""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, TypedDict, Unpack

import torch
from torch import Tensor, nn

from noiseproof.analog import AnalogForward, analog_forward, ir_drop_window
from noiseproof.analog_ranges import AnalogRanges, LearnedRanges, learned_ranges
from noiseproof.chip import ChipSelection, chip_params
from noiseproof.data.base import Dataset
from noiseproof.data.batching import global_batch_sizes, steps_per_epoch, train_batches
from noiseproof.data.streaming import StreamedSplit
from noiseproof.devices import accumulator_dtype, model_device, rank_device
from noiseproof.errors import NoiseproofError
from noiseproof.evaluation.arguments import check_outputs_fit
from noiseproof.evaluation.clean import clean_metrics
from noiseproof.evaluation.transfers import run_transfers
from noiseproof.evaluation.vectorised import PROBE_EXAMPLES
from noiseproof.modes import frozen_modules, kept_modes, train_mode
from noiseproof.noise.base import NoiseModel
from noiseproof.precision import autocast, grad_scaler
from noiseproof.progress import Progress, progress_bar
from noiseproof.seeding import generator, global_rng
from noiseproof.settings import RunSettings, from_options
from noiseproof.tasks import AUTO, Task, create_task
from noiseproof.training.callbacks import Callback, check_callbacks, notify
from noiseproof.training.config import TrainConfig
from noiseproof.training.context import Objective, Restricted, StepContext
from noiseproof.training.cost import CostMeter
from noiseproof.training.distributed import (
    check_divisible,
    forwards_with_grad,
    from_main,
    is_distributed,
    is_main,
    peers_kept,
    rank_keys,
    share,
    summed,
    sync_buffers,
    wrap,
)

if TYPE_CHECKING:  # the trainer needs only the Objective protocol, never the methods package
    from noiseproof.methods.base import Method


@dataclass
class TrainResult:
    """Per-epoch log (mean of each loss term, the task's validation metrics `val_<metric>`, lr,
    seconds) and the best epoch.

    best_val: the kept epoch's clean validation value of the task's primary metric `val_metric`
    (accuracy, mse, perplexity...), or with `select: noisy` its mean under noise (NaN without a
    validation split).
    """

    history: list[dict[str, float]] = field(default_factory=list)
    best_epoch: int = 0
    best_val: float = float("nan")
    val_metric: str = "accuracy"
    cost: dict[str, float | int | str] = field(default_factory=dict)
    """What the training cost (noiseproof.training.cost.CostMeter.record): seconds, steps,
    examples, model forwards, FLOPs (torch's counter), device."""
    ranges: AnalogRanges | None = None
    """The kept epoch's learned input ranges (forward.input_range mode learned), else None."""

    @property
    def best_val_accuracy(self) -> float:
        """`best_val` when the primary metric is accuracy (classification), else NaN."""
        return self.best_val if self.val_metric == "accuracy" else float("nan")


def scored_column(select: str, metric: str) -> str:
    """The history column `select` keeps the best epoch of: val_<metric> ('clean', and 'last'
    reports it) or val_noisy_<metric> ('noisy')."""
    return f"val_noisy_{metric}" if select == "noisy" else f"val_{metric}"


def make_optimizer(params: list[Tensor], config: TrainConfig) -> torch.optim.Optimizer:
    """Adam (Kingma & Ba 2015) or SGD with momentum, with the configured weight decay."""
    if config.optimizer == "adam":
        return torch.optim.Adam(params, lr=config.lr, weight_decay=config.weight_decay)
    return torch.optim.SGD(
        params, lr=config.lr, momentum=config.momentum, weight_decay=config.weight_decay
    )


def make_schedule(
    optimizer: torch.optim.Optimizer, config: TrainConfig
) -> torch.optim.lr_scheduler.LRScheduler:
    """Per-epoch schedule: constant, cosine annealing to 0, or step decay at `milestones`."""
    if config.schedule == "cosine":
        return torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=config.epochs)
    if config.schedule == "step":
        return torch.optim.lr_scheduler.MultiStepLR(
            optimizer, list(config.milestones), config.gamma
        )
    return torch.optim.lr_scheduler.ConstantLR(optimizer, factor=1.0, total_iters=0)


class TrainOptions(TypedDict, total=False):
    """`train`'s friendly keyword arguments, each setting the RunSettings field of its name
    (noiseproof.settings): selection, device, analog, task."""

    selection: ChipSelection | None
    device: torch.device | str | None
    analog: AnalogForward | None
    task: Task | str | Mapping[str, Any] | None


TRAINING_NAMES = {name: name for name in TrainOptions.__annotations__}
"""`train`'s friendly keyword arguments -> the RunSettings field each sets (the same name)."""


def train(
    model: nn.Module,
    data: Dataset,
    method: Method,
    config: TrainConfig | None = None,
    *,
    noise: NoiseModel | None = None,
    seed: int = 0,
    progress: bool = True,
    callbacks: Sequence[Callback] | None = None,
    settings: RunSettings | None = None,
    **options: Unpack[TrainOptions],
) -> TrainResult:
    """Train `model` in place with `method`; on return it holds the best-validation weights.

    settings: the run's settings (noiseproof.settings.RunSettings: device, chip selection,
    analog forward, task; a `compare` builds them once); the keyword arguments selection,
    device, analog and task build them, or replace their fields.

    task: what the model is trained for (noiseproof.tasks: a Task, a name or a mapping; None
    infers it from the training targets and inputs, logged in one line): its loss is every
    method's task term, its primary metric the validation score (higher or lower is better,
    as the metric says).

    Two generators derived from `seed` make every random draw: one shuffles the data, one
    serves the method (noise, dropout masks, attacks). The same call gives the same weights, and
    every method with the same seed sees the same batches in the same order. The model's own
    draws from the global state (an nn.Dropout of its own, torch.rand in forward, numpy or
    `random`) come from a fork of it seeded from (seed, rank) (noiseproof.seeding.global_rng):
    the same seed gives the same weights for such a model too, and the caller's global state
    is as it was after the call. The weights kept are those of the epoch `config.select`
    scores best on the validation split (clean metric, mean metric under the same few noisy
    chips every epoch, or the last epoch); without a validation split the last epoch counts
    as best. Submodules the user froze (in eval mode
    inside a model in train mode) stay in eval mode; every module's mode is as it was on return.

    progress: a bar on a terminal, periodic log lines otherwise (noiseproof.progress);
    callbacks: hooks told of each epoch's row (noiseproof.training.callbacks: CSVLogger,
    TensorBoardLogger or your own).
    device: 'auto', 'cpu', 'cuda', 'cuda:N', 'mps' or a torch.device: the model is moved there
    (in place) and the data once (default None: where the model already is). The method's
    generator is made on that device (CPU and CUDA streams differ); the shuffle stays on the
    CPU, so every device sees the same batches. Loss terms are summed on the device and read
    once per epoch. `config.precision` bf16/fp16 runs each step under torch.autocast (fp16
    with a GradScaler); a method that cannot is refused (`Method.precisions`).

    analog: analog forward effects (noiseproof.analog); with `analog.train` every training step
    runs through them, the output noise drawn from the method's generator (validation stays
    digital; IR drop maps the weights over `noise`'s conductance window); without it they are
    ignored here (evaluation applies them). A learned `input_range` trains one range per layer
    with the network (noiseproof.analog_ranges.LearnedRanges, in the optimizer beside the
    model's parameters, not in the model): the kept epoch's are `result.ranges`.

    Inside a torchrun process group (noiseproof.training.distributed.process_group) this is
    data-parallel training: the model is wrapped in DistributedDataParallel (on CUDA each
    process on cuda:LOCAL_RANK), each rank takes its batch_size / world share of the same
    global batches, the method's generator derives from (seed, rank), and every rank ends with
    the same weights and the same kept epoch (rank 0's buffers and validation scores). Only
    rank 0 shows progress and calls `callbacks`.

    >>> import torch, noiseproof as nf
    >>> data = nf.load_dataset("digits")
    >>> _ = torch.manual_seed(0)
    >>> model = nf.build_model({"name": "mlp", "hidden": [32]}, data.input_shape, 10)
    >>> noise = nf.create_noise({"name": "relative_gaussian", "zeta": 0.3})
    >>> result = nf.train(model, data, nf.create_method("noise_injection"),
    ...                   nf.TrainConfig(epochs=3, lr=0.005), noise=noise, progress=False)
    >>> len(result.history), result.val_metric, result.best_val > 0.5, result.cost["steps"]
    (3, 'accuracy', True, 33)
    """
    check_train_arguments(model, data, method, config, noise, seed)
    settings = from_options(settings, options, TRAINING_NAMES)
    selection, analog = settings.selection, settings.analog
    x_probe = None if isinstance(data.x_train, StreamedSplit) else data.x_train  # not streamed
    task = (
        settings.task if settings.task is not None else create_task(AUTO, y=data.y_train, x=x_probe)
    )
    for split in ("train", "val", "test"):
        if len(getattr(data, f"y_{split}")):
            task.check_targets(getattr(data, f"y_{split}"), f"data.y_{split}")
    if isinstance(method, Restricted):  # a Method says which tasks and precisions it trains
        method.check_task(task)
    if analog is not None and not isinstance(analog, AnalogForward):
        raise TypeError(f"analog must be an AnalogForward or None, got {type(analog).__name__}")
    window = ir_drop_window(analog, noise) if analog is not None and analog.train else None
    config = config or TrainConfig()
    callbacks = check_callbacks(callbacks) if is_main() else []  # only rank 0 writes logs
    progress = progress and is_main()
    check_divisible(config.batch_size, "batch_size")
    if config.select == "noisy" and noise is None:
        raise NoiseproofError("train.select 'noisy' needs a noise model")
    if isinstance(method, Restricted):
        method.check_precision(config.precision)
    device = settings.device  # resolved once, under torchrun already cuda:LOCAL_RANK
    if device is None:  # where the model is, under torchrun this process's GPU
        device = rank_device(model_device(model))
    model.to(device)
    data = data.to(device)  # in-memory splits moved once, not per step
    params = chip_params(model, selection)
    check_outputs_fit(
        model,
        None,
        data.example(PROBE_EXAMPLES),
        data.y_train,
        task,
        "data.x_train",
        "data.y_train",
    )
    # under torchrun: a process of the launch that stops is one LaunchStopped line
    with peers_kept("training"), global_rng(seed, "train", *rank_keys(), device=device):
        ctx = StepContext(
            model=model,
            params=params,
            noise=noise,
            generator=generator(seed, "train", *rank_keys(), device=device),
            wrapper=wrap(model, device) if is_distributed() else None,
            task=task,
        )
        shuffle = generator(seed, "shuffle")  # on the CPU on purpose: the same batches everywhere
        learned = learned_ranges(model, list(params), analog, device)  # kept beside the model
        trainable: list[Tensor] = [p for p in model.parameters() if p.requires_grad]
        trainable += learned.parameters() if learned is not None else []
        optimizer = make_optimizer(trainable, config)
        schedule = make_schedule(optimizer, config)
        scaler = grad_scaler(device, config.precision)
        result = TrainResult(val_metric=task.primary.name)
        scored = scored_column(config.select, task.primary.name)
        meter, training_started = CostMeter(), time.perf_counter()
        best_state: dict[str, Tensor] | None = None
        best_score = float("-inf")
        bar = progress_bar(
            config.epochs
            * steps_per_epoch(data, config.batch_size, config.steps_per_epoch, share()[1]),
            f"train {method.registered_name}",
            enabled=progress,
        )
        notify(callbacks, "on_train_begin", model, config)
        frozen = frozen_modules(model)
        try:
            with kept_modes(model), method.attached(ctx):
                for epoch in range(1, config.epochs + 1):
                    started = time.perf_counter()
                    train_mode(model, frozen)
                    with analog_effects(model, params, analog, ctx.generator, window, learned):
                        sums = run_epoch(
                            model,
                            data,
                            method,
                            ctx,
                            optimizer,
                            config,
                            shuffle,
                            bar,
                            scaler,
                            device,
                            meter,
                        )
                    lr = optimizer.param_groups[0]["lr"]  # the rate this epoch trained with
                    schedule.step()
                    row = {"epoch": epoch, **sums, "lr": lr}
                    sync_buffers(model)  # under torchrun: rank 0's BatchNorm statistics everywhere
                    if len(data.y_val):
                        measured = clean_metrics(
                            model, data.x_val, data.y_val, task, config.eval_batch_size, seed=seed
                        )
                        row |= {f"val_{name}": value for name, value in measured.items()}
                        if config.select == "noisy":
                            assert noise is not None  # refused above without one
                            row[scored] = noisy_validation(
                                model, data, noise, config, selection, seed, task
                            )
                        validated = {k: v for k, v in row.items() if k.startswith("val_")}
                        row |= from_main(validated, device)  # every rank keeps rank 0's epoch
                    row["seconds"] = time.perf_counter() - started
                    result.history.append(row)
                    notify(callbacks, "on_epoch_end", epoch, row)
                    reported = row.get(scored, float("nan"))
                    signed = reported if task.primary.higher_is_better else -reported
                    score = (
                        float(epoch) if config.select == "last" or not len(data.y_val) else signed
                    )
                    if best_state is None or score > best_score:
                        best_score, result.best_epoch, result.best_val = score, epoch, reported
                        best_state = {k: v.detach().clone() for k, v in model.state_dict().items()}
                        result.ranges = learned.ranges() if learned is not None else None
                    shown = {k: f"{v:.4g}" for k, v in row.items() if k not in ("epoch", "lr")}
                    bar.set_postfix({"epoch": f"{epoch}/{config.epochs}", **shown})
            meter.forwards = ctx.forwards
            result.cost = meter.record(time.perf_counter() - training_started, device)
        finally:
            bar.close()
            notify(callbacks, "on_train_end", result)
        assert best_state is not None  # set in the first epoch (epochs >= 1)
        model.load_state_dict(best_state)
        return result


def analog_effects(
    model: nn.Module,
    params: dict[str, Tensor],
    analog: AnalogForward | None,
    gen: torch.Generator,
    window: tuple[float, float] | None = None,
    learned: LearnedRanges | None = None,
) -> AbstractContextManager:
    """The analog forward effects over the on-chip layers when `analog.train` asks for them in
    training (noiseproof.analog.analog_forward; `window`: the noise model's conductance window
    for IR drop; `learned`: the input ranges a learned input_range trains), else a context that
    does nothing."""
    if analog is None or not analog.train:
        return nullcontext()
    return analog_forward(model, list(params), analog, gen, window, learned)


def noisy_validation(
    model: nn.Module,
    data: Dataset,
    noise: NoiseModel,
    config: TrainConfig,
    selection: ChipSelection | None,
    seed: int,
    task: Task,
) -> float:
    """Mean validation value of the task's primary metric over `config.select_transfers` chips,
    the same chips every epoch (a fresh generator from `seed`, on the model's device), at
    `config.select_level` if set."""
    level = config.select_level
    chips = run_transfers(
        model,
        noise if level is None else noise.with_level(level),
        data.x_val,
        data.y_val,
        config.select_transfers,
        generator(seed, "select", device=model_device(model)),
        selection=selection,
        batch_size=config.eval_batch_size,
        task=task,
    )
    return float(chips.metrics[task.primary.name].mean())


def run_epoch(
    model: nn.Module,
    data: Dataset,
    method: Method,
    ctx: StepContext,
    optimizer: torch.optim.Optimizer,
    config: TrainConfig,
    shuffle: torch.Generator,
    bar: Progress,
    scaler: torch.amp.GradScaler | None = None,
    device: torch.device | None = None,
    meter: CostMeter | None = None,
) -> dict[str, float]:
    """One pass over the training split; returns the example-weighted mean of each loss term.
    `meter` (noiseproof.training.cost) counts the steps, examples and the first step's FLOPs.

    The step has no host synchronisation: each term is added, times the batch size, to a
    float64 (float32 on MPS) sum on the device, read once at the end of the epoch. The step
    runs under `config.precision` autocast; `scaler` scales an fp16 loss (disabled: a no-op).
    Data-parallel (`ctx.wrapper` set): this rank's share of each global batch; a share of an
    uneven last batch has its loss scaled so that the averaged gradient is the global batch's;
    the sums are added over the ranks at the end of the epoch.
    """
    device = device or model_device(model)
    scaler = scaler or grad_scaler(device, config.precision)
    dtype = accumulator_dtype(device)
    sums: dict[str, Tensor] = {}
    seen: int | Tensor = 0  # a tensor once summed over the ranks
    rank, world = share()
    batches = train_batches(
        data, config.batch_size, shuffle, config.steps_per_epoch, device, rank=rank, world=world
    )
    sizes = global_batch_sizes(len(data.y_train), config.batch_size, config.steps_per_epoch, world)
    meter = meter or CostMeter()
    for (x, y), size in zip(batches, sizes, strict=True):
        made = forwards_with_grad(ctx.wrapper) if ctx.wrapper is not None else 0
        with meter.step(len(y)):
            with autocast(device, config.precision):
                # Method.terms is annotated for one tensor; tuple/dict inputs reach ctx.forward as
                # they are
                terms = method.terms(ctx, x, y)  # type: ignore[arg-type]
                loss = torch.stack(list(terms.values())).sum()
            if ctx.wrapper is not None and forwards_with_grad(ctx.wrapper) == made:
                raise NoiseproofError(
                    f"method '{getattr(method, 'registered_name', type(method).__name__)}' made "
                    "no forward through StepContext.forward: under torchrun its gradients would "
                    "not be averaged over the processes (use ctx.forward(params, x))"
                )
            scale = world * len(y) / size  # 1 but for the shares of an uneven last batch
            optimizer.zero_grad(set_to_none=True)
            scaler.scale(loss if scale == 1 else loss * scale).backward()
            scaler.step(optimizer)
            scaler.update()
        for name, value in {"loss": loss, **terms}.items():
            part = value.detach().to(dtype) * len(y)
            sums[name] = sums[name] + part if name in sums else part
        seen += len(y)
        bar.update(1)
    if world > 1 and sums:  # one collective per epoch: the means over every rank's examples
        names = list(sums)
        totals = summed(torch.stack([*(sums[n] for n in names), sums[names[0]].new_tensor(seen)]))
        sums, seen = dict(zip(names, totals[:-1], strict=True)), totals[-1]
    return {name: float(total) / float(seen) for name, total in sums.items()}


def check_train_arguments(
    model: object, data: object, method: object, config: object, noise: object, seed: object
) -> None:
    """TypeError naming the first argument of `train` that has the wrong type."""
    expected = (
        ("model", model, nn.Module, "a torch.nn.Module"),
        ("data", data, Dataset, "a noiseproof Dataset (e.g. Dataset.from_tensors)"),
        ("method", method, Objective, "a Method (noiseproof.create_method)"),
        ("config", config, (TrainConfig, type(None)), "a TrainConfig or None"),
        ("noise", noise, (NoiseModel, type(None)), "a NoiseModel (create_noise) or None"),
    )
    for name, value, kind, wanted in expected:
        if not isinstance(value, kind):
            raise TypeError(f"{name} must be {wanted}, got {type(value).__name__}")
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise TypeError(f"seed must be an int, got {seed!r}")

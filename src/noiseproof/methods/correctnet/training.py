"""Training compensation: the one trainer, with an objective through a fresh noisy chip per step.

Compensation is trained under a fresh draw of the noise model every step with every original
weight frozen: the base parameters' requires_grad is off for the call, so the trainer's
optimiser holds the compensation only, and `Compensated.train()` keeps the base in eval mode
(BatchNorm uses and keeps its running statistics). The loop, batching, schedule and
best-validation selection are those of noiseproof.training.trainer.train: `steps` are cut
into epochs of at most `eval_every` steps (TrainConfig.steps_per_epoch), and with a
validation split every epoch is scored by the trainer's noisy validation (mean accuracy over
`validation_transfers` fixed chips, `select: noisy`); the best epoch is kept, and the
untrained (identity) compensation, scored on the same chips, is the floor.
"""

from __future__ import annotations

import contextlib
import dataclasses
import time
from collections.abc import Callable, Iterator
from typing import Any, ClassVar, Literal, cast

import torch
from torch import Tensor, nn

from noiseproof.chip import ChipSelection, detached, forward
from noiseproof.data.base import Dataset
from noiseproof.inputs import Inputs, take
from noiseproof.methods.base import Method, StepContext
from noiseproof.methods.correctnet.compensation import Compensated, clean_outputs
from noiseproof.methods.correctnet.settings import CompensationTraining
from noiseproof.noise.base import NoiseModel
from noiseproof.tasks import Task, tasks
from noiseproof.training.config import TrainConfig
from noiseproof.training.trainer import noisy_validation, train


def compensation_terms(
    model: Compensated,
    noisy: dict[str, Tensor],
    x: Inputs,
    y: Tensor,
    loss: str,
    run: Callable[[dict[str, Tensor], Inputs], Tensor] | None = None,
    task: Task | None = None,
) -> dict[str, Tensor]:
    """The compensation objective on one batch through one noisy chip, as named terms.

    features: sum over compensated layers of ||z_l - t_l||^2 / ||t_l||^2 (batch means), z_l the
    corrected noisy output, t_l the noise-free output of the same layer, at every call (every
    time step of a spiking network, whose forwards start from rest): the modules learn to
    restore the clean feature maps (our reading of CorrectNet's "correct the noisy feature
    maps"). task: CE of the compensated noisy network. both: both terms.
    run: the forward of `model` through a tensor dict (the trainer's `StepContext.forward`,
    which under torchrun goes through the DistributedDataParallel wrapper; default
    `chip.forward` on `model`); task: whose loss the task term is (None: classification, the
    one task CorrectNet trains).
    """
    targets = clean_outputs(model.base, model.layers, x) if loss != "task" else {}
    model.record = {}
    try:
        logits = forward(model, noisy, x) if run is None else run(noisy, x)
        recorded = model.record
    finally:
        model.record = None
    task = task or tasks.create("classification")
    terms = {} if loss == "features" else {"task": task.loss(logits, y)}
    if targets:
        error = logits.new_zeros(())
        for key, target in targets.items():
            mse = (torch.stack(recorded[key]) - target).pow(2).mean()
            error = error + mse / target.pow(2).mean().clamp_min(1e-12)
        terms["features"] = error
    return terms


class CompensationObjective(Method):
    """Internal method (not registered): the compensation loss through a fresh draw of the
    trainer's noise model on the on-chip (base) parameters, every step."""

    registered_name: ClassVar[str] = "compensation"

    loss: Literal["task", "features", "both"] = "task"

    def terms(self, ctx: StepContext, x: Tensor, y: Tensor) -> dict[str, Tensor]:
        """`compensation_terms` of the Compensated model through one noisy chip."""
        assert ctx.noise is not None  # correctnet refuses to train compensation without one
        noisy = ctx.noise.sample(detached(ctx.params), ctx.generator)
        model = cast(Compensated, ctx.model)  # the method trains the Compensated model
        return compensation_terms(model, noisy, x, y, self.loss, ctx.forward, ctx.task)


@contextlib.contextmanager
def frozen_parameters(module: nn.Module) -> Iterator[None]:
    """requires_grad off on every parameter of `module` for the body, then each flag restored."""
    flags = [(p, p.requires_grad) for p in module.parameters()]
    try:
        for p, _ in flags:
            p.requires_grad_(False)
        yield
    finally:
        for p, flag in flags:
            p.requires_grad_(flag)


def validation_view(data: Dataset, examples: int | None) -> Dataset:
    """`data` with its validation split cut to the first `examples` (None: all of it)."""
    if examples is None or examples >= len(data.y_val):
        return data
    return dataclasses.replace(
        data, x_val=take(data.x_val, slice(0, examples)), y_val=data.y_val[:examples]
    )


def train_compensation(
    model: Compensated,
    data: Dataset,
    noise: NoiseModel,
    training: CompensationTraining,
    *,
    seed: int,
    selection: ChipSelection | None = None,
    steps: int | None = None,
    val_examples: int | None = None,
    eval_batch_size: int = 2000,
) -> dict[str, Any]:
    """Train `model.comp` under fresh noise draws with the trainer; the original weights stay
    bit-identical. Returns the record: steps, seconds, final_loss (mean of the last epoch),
    best_step (0: the untrained compensation was kept), best_validation (NaN without a
    validation split), history (the trainer's per-epoch log).

    steps: optimiser steps (default training.steps), in epochs of at most training.eval_every
    steps (rounded up to a whole number of equal epochs); val_examples: validation examples
    scored (default all). Random streams come from `seed` (the trainer's "train" and
    "shuffle" streams; its fixed validation chips).
    """
    steps = training.steps if steps is None else steps
    if not model.compensation_parameters():
        return {"steps": 0, "seconds": 0.0, "final_loss": float("nan")}
    epochs = -(-steps // training.eval_every)
    per_epoch = -(-steps // epochs)
    view = validation_view(data, val_examples)
    validated = len(view.y_val) > 0
    config = TrainConfig(
        epochs=epochs,
        steps_per_epoch=per_epoch,
        batch_size=training.batch_size,
        optimizer="adam",
        lr=training.lr,
        schedule="constant",
        select="noisy" if validated else "last",
        select_transfers=training.validation_transfers,
        eval_batch_size=eval_batch_size,
    )
    started = time.perf_counter()
    initial = {k: v.detach().clone() for k, v in model.comp.state_dict().items()}
    floor = float("-inf")
    if validated:
        floor = noisy_validation(
            model, view, noise, config, selection, seed, tasks.create("classification")
        )
    with frozen_parameters(model.base):
        result = train(
            model,
            view,
            CompensationObjective(loss=training.loss),
            config,
            noise=noise,
            selection=selection,
            seed=seed,
            progress=False,
        )
    best_step = result.best_epoch * per_epoch
    if validated and floor >= result.best_val_accuracy:  # the identity scored at least as well
        model.comp.load_state_dict(initial)
        best_step = 0
    return {
        "steps": epochs * per_epoch,
        "seconds": time.perf_counter() - started,
        "final_loss": result.history[-1]["loss"],
        "best_step": best_step,
        "best_validation": max(floor, result.best_val_accuracy) if validated else float("nan"),
        "history": result.history,
    }

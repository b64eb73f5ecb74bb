"""The trainer's side of the method interface: the context a method sees at each step, and the
two calls the trainer makes on a method.

They live with the trainer, below the methods package, so the trainer depends on no method
module (and a method such as `correctnet` may itself call the trainer);
noiseproof.methods.base.Method satisfies `Objective`.
"""

from __future__ import annotations

import contextlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable

import torch
from torch import Tensor, nn

from noiseproof.chip import forward
from noiseproof.inputs import Inputs
from noiseproof.noise.base import NoiseModel
from noiseproof.tasks import Task, tasks


@dataclass
class StepContext:
    """What a method sees at each step.

    model: the user's module (its non-chip parameters and buffers are used as they are);
    params: the on-chip tensors themselves (`chip.chip_params`: nn.Parameter, gradients
    flow into them, and any selected buffers);
    noise: the experiment's noise model (methods may use their own instead);
    generator: the training stream of random draws (every draw must use it);
    wrapper: under torchrun, the DistributedDataParallel module around `model` (None in one
    process). Names, hooks and buffers are `model`'s; forwards go through `forward`;
    task: what the network is trained for (noiseproof.tasks): every loss term a method makes
    of the outputs is the task's (`task.loss`, `task.divergence`).
    """

    model: nn.Module
    params: dict[str, Tensor]
    noise: NoiseModel | None
    generator: torch.Generator
    wrapper: nn.Module | None = None
    task: Task = field(default_factory=lambda: tasks.create("classification"))
    forwards: int = 0
    """Model forwards made through `forward` so far (the training's cost record reads it)."""

    def forward(self, params: Mapping[str, Tensor] | None, x: Inputs) -> Tensor:
        """`chip.forward(model, params, x)`: the logits with `params` standing in for those
        names. Every forward of a method goes through here: under torchrun it is made through
        the DistributedDataParallel wrapper (names prefixed 'module.'), whose backward averages
        the gradients over the processes; a forward on `model` itself would not."""
        self.forwards += 1
        if self.wrapper is None:
            return forward(self.model, params, x)
        named = None if params is None else {f"module.{n}": t for n, t in params.items()}
        return forward(self.wrapper, named, x)


@runtime_checkable
class Restricted(Protocol):
    """An objective that says what it cannot train (noiseproof.methods.base.Method does): each
    check raises one line naming what to change."""

    def check_precision(self, precision: str) -> None:
        """Refuse a `train.precision` the objective cannot train in."""
        ...

    def check_task(self, task: Task) -> None:
        """Refuse a task the objective cannot train."""
        ...


@runtime_checkable
class Objective(Protocol):
    """What the trainer calls on a training method (noiseproof.methods.base.Method)."""

    def terms(self, ctx: StepContext, x: Tensor, y: Tensor) -> dict[str, Tensor]:
        """Named, already weighted loss terms for one batch."""
        ...

    def attached(self, ctx: StepContext) -> contextlib.AbstractContextManager[None]:
        """Whatever the method installs on the model for training, removed on exit."""
        ...

"""The trainer's side of the method interface: the context a method sees at each step, and the
two calls the trainer makes on a method.

They live with the trainer, below the methods package, so the trainer depends on no method
module (and a method such as `correctnet` may itself call the trainer);
noiseproof.methods.base.Method satisfies `Objective`.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

import torch
from torch import Tensor, nn

from noiseproof.noise.base import NoiseModel


@dataclass
class StepContext:
    """What a method sees at each step.

    model: the user's module (its non-chip parameters and buffers are used as they are);
    params: the on-chip parameters themselves (nn.Parameter, gradients flow into them);
    noise: the experiment's noise model (methods may use their own instead);
    generator: the training stream of random draws (every draw must use it).
    """

    model: nn.Module
    params: dict[str, nn.Parameter]
    noise: NoiseModel | None
    generator: torch.Generator


@runtime_checkable
class Objective(Protocol):
    """What the trainer calls on a training method (noiseproof.methods.base.Method)."""

    def terms(self, ctx: StepContext, x: Tensor, y: Tensor) -> dict[str, Tensor]:
        """Named, already weighted loss terms for one batch."""
        ...

    def attached(self, ctx: StepContext) -> contextlib.AbstractContextManager[None]:
        """Whatever the method installs on the model for training, removed on exit."""
        ...

"""A noiseproof plugin as a user would write one: importing it registers a model 'mine', a
noise model 'uniform_jitter', a method 'clean_and_noisy' and a dataset 'blobs'."""

from __future__ import annotations

import math
from typing import ClassVar

import torch
from pydantic import Field
from torch import Tensor, nn

from noiseproof.chip import detached, forward, straight_through
from noiseproof.data.base import Dataset, DatasetSpec, datasets
from noiseproof.methods.base import Method, StepContext, methods
from noiseproof.models.base import ModelSpec, models
from noiseproof.noise.base import PerTensorNoise, noise_models, uniform


class TwoLayer(nn.Module):
    """Flatten, a tanh hidden layer, logits."""

    def __init__(self, inputs: int, width: int, outputs: int) -> None:
        super().__init__()
        self.hidden = nn.Linear(inputs, width)
        self.out = nn.Linear(width, outputs)

    def forward(self, x: Tensor) -> Tensor:
        """Logits [B, outputs]."""
        return self.out(torch.tanh(self.hidden(x.flatten(1))))


@models.register("mine")
class Mine(ModelSpec):
    """The user's own two-layer network."""

    width: int = Field(16, gt=0, description="hidden units")

    def build(self, input_shape: tuple[int, ...], num_outputs: int) -> nn.Module:
        """A fresh TwoLayer for this data."""
        return TwoLayer(math.prod(input_shape), self.width, num_outputs)


@noise_models.register("uniform_jitter")
class UniformJitter(PerTensorNoise):
    """w' = w (1 + a U(-1, 1))."""

    level_field: ClassVar[str] = "amplitude"
    amplitude: float = Field(0.2, ge=0.0, description="relative half-width a")

    def perturb(self, name: str, tensor: Tensor, generator: torch.Generator) -> Tensor:
        """One independent draw per element."""
        return tensor * (1 + self.amplitude * (2 * uniform(tensor, generator) - 1))


@methods.register("clean_and_noisy")
class CleanAndNoisy(Method):
    """Task loss of the clean forward plus `weight` x the task loss through one noisy draw."""

    weight: float = Field(1.0, ge=0.0, description="weight of the noisy term")

    def terms(self, ctx: StepContext, x: Tensor, y: Tensor) -> dict[str, Tensor]:
        """{'task': clean loss, 'noisy': weighted loss through the experiment's noise}."""
        noisy = straight_through(ctx.params, ctx.noise.sample(detached(ctx.params), ctx.generator))
        return {
            "task": ctx.task.loss(forward(ctx.model, ctx.params, x), y),
            "noisy": self.weight * ctx.task.loss(forward(ctx.model, noisy, x), y),
        }


@datasets.register("blobs")
class Blobs(DatasetSpec):
    """Three Gaussian blobs in 2-d."""

    n: int = Field(300, ge=30, description="points in all")
    seed: int = Field(0, description="seed of the points")

    def load(self) -> Dataset:
        """Points around three centres; the first fifth is the test split."""
        gen = torch.Generator().manual_seed(self.seed)
        y = torch.randint(0, 3, (self.n,), generator=gen)
        centres = torch.tensor([[0.0, 2.0], [2.0, -1.0], [-2.0, -1.0]])
        x = centres[y] + 0.7 * torch.randn(self.n, 2, generator=gen)
        cut, val = self.n // 5, self.n // 10
        return Dataset(
            "blobs",
            x[cut + val :],
            y[cut + val :],
            x[cut : cut + val],
            y[cut : cut + val],
            x[:cut],
            y[:cut],
            num_classes=3,
        )

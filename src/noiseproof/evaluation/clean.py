"""Noise-free evaluation: the task's metrics of a module as it is (or through given params)."""

from __future__ import annotations

from collections.abc import Mapping

import torch
from torch import Tensor, nn

from noiseproof.chip import forward
from noiseproof.devices import model_device
from noiseproof.inputs import Inputs, split, to
from noiseproof.modes import evaluating
from noiseproof.precision import autocast
from noiseproof.seeding import global_rng
from noiseproof.tasks import Task, tasks


@torch.no_grad()
def clean_metrics(
    model: nn.Module,
    x: Inputs,
    y: Tensor,
    task: Task,
    batch_size: int = 2000,
    params: Mapping[str, Tensor] | None = None,
    precision: str = "fp32",
    seed: int = 0,
) -> dict[str, float]:
    """Each of the task's metrics on (x, y) without noise, in eval mode (every submodule's mode
    restored after), through `params` when given (else the module as it is), on the model's
    device (x, y moved there once), under `precision` autocast; the task's sums are added
    over the batches on the device and read back once.

    seed: the run's seed. The user's own draws (an nn.Dropout kept in train mode, torch.rand
    in a forward) come from a fork of the global generators seeded from (seed, 'clean')
    (noiseproof.seeding.global_rng), as in training and Monte Carlo: the same seed gives the
    same numbers, and the caller's global random state is left as it was."""
    device = model_device(model)
    x, y = to(x, device), y.to(device)
    sums = None
    with evaluating(model), autocast(device, precision), global_rng(seed, "clean", device=device):
        for xs, ys in zip(split(x, batch_size), y.split(batch_size), strict=True):
            part = task.sums(forward(model, params, xs), ys)
            sums = part if sums is None else sums + part
    assert sums is not None, "y holds no examples"  # callers check (x, y) first
    return {name: float(value) for name, value in task.chip_metrics(sums.cpu()).items()}


def clean_accuracy(
    model: nn.Module, x: Inputs, y: Tensor, batch_size: int = 2000, precision: str = "fp32"
) -> float:
    """Fraction of (x, y) the classifier gets right without noise (on the model's device, under
    `precision` autocast; one number read back)."""
    task = tasks.create("classification")
    return clean_metrics(model, x, y, task, batch_size, precision=precision)["accuracy"]

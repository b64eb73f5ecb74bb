"""Training batches: one epoch of shuffled (inputs, labels) batches from a Dataset.

Every shuffle comes from an explicit generator, so the same seed gives the same batches in the
same order for every method.
"""

from __future__ import annotations

from collections.abc import Iterator

import torch
from torch import Tensor

from noiseproof.data.base import Dataset
from noiseproof.inputs import Inputs, take


def batch_indices(
    n: int, batch_size: int, gen: torch.Generator, steps: int | None = None
) -> list[Tensor]:
    """A fresh random permutation of range(n) cut into batches (the last may be smaller); with
    `steps`, exactly that many batches of min(batch_size, n), cut from as many fresh
    permutations, one after the other, as they need."""
    if steps is None:
        return list(torch.randperm(n, generator=gen).split(batch_size))
    size = min(batch_size, n)
    order = torch.cat([torch.randperm(n, generator=gen) for _ in range(-(-steps * size // n))])
    return list(order[: steps * size].split(size))


def steps_per_epoch(data: Dataset, batch_size: int, steps: int | None = None) -> int:
    """How many batches `train_batches` yields per epoch."""
    return steps if steps is not None else -(-len(data.y_train) // batch_size)


def train_batches(
    data: Dataset, batch_size: int, gen: torch.Generator, steps: int | None = None
) -> Iterator[tuple[Inputs, Tensor]]:
    """One epoch of training batches (x, y), shuffled by `gen` (see `batch_indices`)."""
    for index in batch_indices(len(data.y_train), batch_size, gen, steps):
        yield take(data.x_train, index), data.y_train[index]

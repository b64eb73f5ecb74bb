"""Training batches: one epoch of shuffled (inputs, labels) batches from a Dataset.

Every shuffle comes from an explicit generator, so the same seed gives the same batches in the
same order for every method. In-memory splits are indexed as tensors (on the device they
live on), augmented per batch on that device when the Dataset has an `augment`; a streamed
split is read through a DataLoader (noiseproof.data.streaming) with the same permutation.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import cast

import torch
from torch import Tensor

from noiseproof.data.base import Dataset
from noiseproof.data.streaming import SEED_SPACE, StreamedSplit, stream_batches
from noiseproof.inputs import Inputs, leaves, take, to


def batch_indices(
    n: int, batch_size: int, gen: torch.Generator, steps: int | None = None
) -> list[Tensor]:
    """A fresh random permutation of range(n) cut into batches (the last may be smaller); with
    `steps`, exactly that many batches of min(batch_size, n), cut from as many fresh
    permutations, one after the other, as they need."""
    device = gen.device  # a CUDA generator draws on its device
    if steps is None:
        return list(torch.randperm(n, generator=gen, device=device).split(batch_size))
    size = min(batch_size, n)
    rounds = -(-steps * size // n)
    order = torch.cat([torch.randperm(n, generator=gen, device=device) for _ in range(rounds)])
    return list(order[: steps * size].split(size))


def steps_per_epoch(
    data: Dataset, batch_size: int, steps: int | None = None, world: int = 1
) -> int:
    """How many batches `train_batches` yields per epoch (to each of `world` ranks)."""
    return len(global_batch_sizes(len(data.y_train), batch_size, steps, world))


def global_batch_sizes(
    n: int, batch_size: int, steps: int | None = None, world: int = 1
) -> list[int]:
    """The size of each global batch `train_batches` cuts from `n` examples, in order (the
    union of the `world` ranks' shares; see `batch_indices`)."""
    if steps is not None:
        return [min(batch_size, n)] * steps
    sizes = [batch_size] * (n // batch_size) + ([n % batch_size] if n % batch_size else [])
    return [size for size in sizes if size >= world]


def draw_seed(gen: torch.Generator) -> int:
    """A seed drawn from `gen` (one draw, on the generator's device) for a derived stream."""
    return int(torch.randint(SEED_SPACE, (1,), generator=gen, device=gen.device))


def train_batches(
    data: Dataset,
    batch_size: int,
    gen: torch.Generator,
    steps: int | None = None,
    device: torch.device | str | None = None,
    *,
    rank: int = 0,
    world: int = 1,
) -> Iterator[tuple[Inputs, Tensor]]:
    """One epoch of training batches (x, y), shuffled by `gen` (see `batch_indices`), on
    `device` (None: where the data lives; a streamed split: the CPU).

    rank, world: data-parallel training (DistributedSampler semantics over the one
    permutation): every rank draws the same global batches and takes positions rank,
    rank + world, ... of each, so the union over the ranks is the one-process batch
    (augmented as a whole, then shared). A last batch with fewer than `world` examples is
    dropped (`global_batch_sizes`); world 1 is the one-process path, unchanged.

    In memory: tensor indexing on the data's device (the indices moved there once per epoch),
    then `data.augment` per batch with a generator on the batch's device seeded by one draw
    from `gen` after the permutation (no draw without augmentation, so those batches are as
    before). Streamed: the same permutation read through a DataLoader (pinned memory and
    non_blocking copies on CUDA); per-example transforms seeded by one draw from `gen`.
    """
    device = None if device is None else torch.device(device)
    indices = batch_indices(len(data.y_train), batch_size, gen, steps)
    if world > 1:
        indices = [index for index in indices if len(index) >= world]
    if isinstance(data.x_train, StreamedSplit):  # data.streamed, narrowed for mypy
        share = (rank, world)
        yield from stream_batches(data.x_train, indices, draw_seed(gen), device, share)
        return
    home = data.y_train.device
    if indices and indices[0].device != home:  # one copy per epoch, not one per batch
        indices = list(torch.cat(indices).to(home).split([len(i) for i in indices]))
    augment = data.augment
    where = device or leaves(data.x_train)[0].device
    augment_gen = torch.Generator(where).manual_seed(draw_seed(gen)) if augment else None
    mine = slice(rank, None, world)
    for index in indices:
        if world > 1 and augment is None:  # only this rank's share is read
            index = index[mine]
        x, y = take(data.x_train, index), data.y_train[index]
        if device is not None and home != device:
            x, y = to(x, device), y.to(device)
        if augment is not None:
            assert augment_gen is not None  # made above when there is an augment
            x = augment(cast(Tensor, x), augment_gen)  # an augment takes one image batch
            if world > 1:
                x, y = take(x, mine), y[mine]
        yield x, y

"""Training splits streamed from disk through a torch.utils.data.DataLoader, deterministically.

A `StreamedSplit` stands where the training inputs would be (`Dataset.x_train`) when they do
not fit in memory or need per-example random transforms. One epoch's batches hold the same
examples as the in-memory path would (the same permutation of the shuffle generator); each
example's random transform draws from its own generator seeded from the epoch's seed and its
position in the epoch, so the batches do not depend on `num_workers` or on which worker
loaded what: the same seed gives the same batches.
"""

from __future__ import annotations

import random
from abc import ABC, abstractmethod
from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np
import torch
from torch import Tensor
from torch.utils.data import DataLoader
from torch.utils.data import Dataset as TorchDataset

from noiseproof.errors import NoiseproofError

SEED_SPACE = 2**63 - 1


class StreamedSplit(TorchDataset, ABC):
    """A training split read example by example (subclasses implement `load`).

    `labels` (the split's targets y, e.g. int64 [N]) stay in memory; `input_shape` is the
    per-example shape; `num_workers` the DataLoader processes that read it (0: the training
    process itself). Indexing with anything but the (index, seed) pairs the loader sends is
    refused in one line: the inputs are not in memory as tensors.
    """

    labels: Tensor
    input_shape: tuple[int, ...]
    num_workers: int = 0
    description: str = "a streamed training split"

    @abstractmethod
    def load(self, index: int, generator: torch.Generator | None) -> Tensor:
        """Example `index` as a float tensor of `input_shape`, with its random transform drawn
        from `generator` (None: the deterministic evaluation transform)."""

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, item: Any) -> tuple[Tensor, Tensor]:
        """(inputs, target) for an (index, seed) pair from `plan_batches`: the target as a
        tensor of any kind (a class index, token targets or regression values), which the
        loader stacks into the batch's y with its dtype kept."""
        if not (isinstance(item, tuple) and len(item) == 2):
            raise NoiseproofError(
                f"the training split is streamed ({self.description}, {len(self)} examples): "
                "its inputs are not in memory; train with noiseproof.train, or read the "
                "validation/test splits"
            )
        index, seed = item
        return self.load(index, torch.Generator().manual_seed(seed)), self.labels[index]

    def examples(self, n: int) -> Tensor:
        """The first `n` training inputs under the evaluation transform, stacked."""
        return torch.stack([self.load(i, None) for i in range(min(n, len(self)))])


def plan_batches(indices: Sequence[Tensor], seed: int) -> list[list[tuple[int, int]]]:
    """Each batch's (index, seed) pairs: the example at epoch position k draws from seed + k."""
    plan, position = [], 0
    for batch in indices:
        items = batch.tolist()
        plan.append([(i, (seed + position + k) % SEED_SPACE) for k, i in enumerate(items)])
        position += len(items)
    return plan


def seed_worker(worker_id: int) -> None:
    """Seed Python's and NumPy's global generators in a loader worker from the seed PyTorch
    gave it (derived from the loader's generator), for user transforms that use them."""
    seed = torch.initial_seed() % 2**32
    random.seed(seed)
    np.random.seed(seed)


def stream_batches(
    stream: StreamedSplit,
    indices: Sequence[Tensor],
    seed: int,
    device: torch.device | None,
    share: tuple[int, int] = (0, 1),
) -> Iterator[tuple[Tensor, Tensor]]:
    """The batches of `indices` read through a DataLoader (`stream.num_workers` workers, pinned
    memory when `device` is CUDA, copies with non_blocking), each moved to `device`.

    share: (rank, world) of data-parallel training: only positions rank, rank + world, ... of
    each batch are read, each with the transform seed it has in the whole batch."""
    cuda = device is not None and device.type == "cuda"
    rank, world = share
    plan = plan_batches(indices, seed)
    loader = DataLoader(
        stream,
        batch_sampler=plan if world == 1 else [batch[rank::world] for batch in plan],
        num_workers=stream.num_workers,
        pin_memory=cuda,
        worker_init_fn=seed_worker if stream.num_workers else None,
        generator=torch.Generator().manual_seed(seed),
    )
    try:
        for x, y in loader:
            if device is not None:
                x, y = x.to(device, non_blocking=cuda), y.to(device, non_blocking=cuda)
            yield x, y
    except NoiseproofError as error:  # from a worker: the original line is the last one
        last = str(error).strip().splitlines()[-1]
        raise NoiseproofError(last.split("NoiseproofError: ", 1)[-1]) from None

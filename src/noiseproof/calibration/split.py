"""The calibration split: examples of the training split, drawn once per seed, never test
examples."""

from __future__ import annotations

import hashlib
import logging

import torch
from torch import Tensor

from noiseproof.data.base import Dataset
from noiseproof.data.streaming import StreamedSplit
from noiseproof.inputs import Inputs, count, leaves, take
from noiseproof.seeding import generator

log = logging.getLogger(__name__)


def calibration_split(data: Dataset, examples: int, seed: int) -> tuple[Inputs, Tensor]:
    """(x, y) of `examples` examples of `data`'s training split, a uniform draw without
    replacement that depends on `seed` only (torch.randperm on a CPU generator seeded by
    (seed, 'calibration-split')), on the data's device. Disjoint from the test split: a
    training example equal (bit for bit) to a test example (datasets whose splits share
    images) is passed over in the draw, with a warning saying how many; the draw is otherwise
    the same. ValueError in one line for a streamed training split or more examples than it
    holds (apart from such duplicates)."""
    if isinstance(examples, bool) or not isinstance(examples, int) or examples < 1:
        raise ValueError(f"examples must be an integer >= 1, got {examples!r}")
    if isinstance(data.x_train, StreamedSplit):  # data.streamed, narrowed for mypy
        raise ValueError(
            f"calibration draws from the training split, which {data.name} streams: "
            "use an in-memory dataset"
        )
    available = count(data.x_train)
    if examples > available:
        raise ValueError(
            f"examples: {examples} calibration examples asked, the training split of "
            f"{data.name} holds {available}"
        )
    order = torch.randperm(available, generator=generator(seed, "calibration-split"))
    test = set(_rows(data.x_test)) if count(data.x_test) else set()
    index: list[int] = []
    skipped = start = 0
    while len(index) < examples and start < available:  # in blocks: hashes only what it takes
        block = order[start : start + 2 * (examples - len(index))]
        start += len(block)
        for i, row in zip(block.tolist(), _rows(take(data.x_train, block)), strict=True):
            if row in test:
                skipped += 1
            elif len(index) < examples:
                index.append(i)
    if len(index) < examples:
        raise ValueError(
            f"examples: {examples} calibration examples asked, the training split of "
            f"{data.name} holds {available - skipped} that are not also test examples"
        )
    if skipped:
        log.warning(
            f"calibration split: {skipped} drawn training examples equal test examples and "
            "were passed over (the dataset's splits share them)"
        )
    picked = torch.tensor(index, dtype=torch.long, device=data.y_train.device)
    return take(data.x_train, picked), data.y_train[picked]


def _rows(x: Inputs) -> list[bytes]:
    """One digest per example of `x` (all its tensors' bytes)."""
    parts = [t.detach().reshape(count(x), -1).cpu().contiguous() for t in leaves(x)]
    digests = []
    for i in range(count(x)):
        digest = hashlib.sha256()
        for part in parts:
            digest.update(part[i].numpy().tobytes())
        digests.append(digest.digest())
    return digests

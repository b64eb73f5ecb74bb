"""The calibration split: examples of the training split, drawn once per seed, never test
examples."""

from __future__ import annotations

import hashlib

import torch
from torch import Tensor

from noiseproof.data.base import Dataset
from noiseproof.inputs import Inputs, count, leaves, take
from noiseproof.seeding import generator


def calibration_split(data: Dataset, examples: int, seed: int) -> tuple[Inputs, Tensor]:
    """(x, y) of `examples` examples of `data`'s training split, a uniform draw without
    replacement that depends on `seed` only (torch.randperm on a CPU generator seeded by
    (seed, 'calibration-split')), on the data's device. Disjoint from the test split by
    construction; `check_disjoint` also refuses an example equal to a test example (a dataset
    whose splits share examples). ValueError in one line for a streamed training split or
    more examples than it holds."""
    if isinstance(examples, bool) or not isinstance(examples, int) or examples < 1:
        raise ValueError(f"examples must be an integer >= 1, got {examples!r}")
    if data.streamed:
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
    index = order[:examples].to(data.y_train.device)
    x, y = take(data.x_train, index), data.y_train[index]
    check_disjoint(x, data.x_test)
    return x, y


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


def check_disjoint(x: Inputs, x_test: Inputs) -> None:
    """ValueError (one line) when an example of `x` equals (bit for bit) an example of the test
    split `x_test`: calibrating on test examples would overstate the calibrated accuracy."""
    if not count(x_test):
        return
    shared = set(_rows(x)) & set(_rows(x_test))
    if shared:
        raise ValueError(
            f"the calibration split overlaps the test split: {len(shared)} of its "
            f"{count(x)} examples are test examples"
        )

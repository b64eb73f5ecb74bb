"""Training batches: the in-memory path unchanged, augmentation per batch, streamed splits
through a DataLoader giving the same batches for the same seed, whatever num_workers."""

from __future__ import annotations

import dataclasses

import pytest
import torch
from torch import Tensor

from noiseproof.data.augment import BatchAugment
from noiseproof.data.base import Dataset
from noiseproof.data.batching import steps_per_epoch, train_batches
from noiseproof.data.streaming import StreamedSplit
from noiseproof.errors import NoiseproofError

DEVICES = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])


def images(n: int = 37, seed: int = 0) -> tuple[Tensor, Tensor]:
    gen = torch.Generator().manual_seed(seed)
    return torch.rand(n, 3, 6, 6, generator=gen), torch.arange(n) % 3


def memory_data(n: int = 37, augment: BatchAugment | None = None) -> Dataset:
    x, y = images(n)
    return Dataset("toy", x, y, x[:5], y[:5], x[:7], y[:7], 3, augment=augment)


class TensorStream(StreamedSplit):
    """A streamed split over tensors; `jitter` adds noise drawn from the example's generator."""

    def __init__(self, x: Tensor, y: Tensor, num_workers: int = 0, jitter: bool = False):
        self.x, self.labels, self.num_workers, self.jitter = x, y, num_workers, jitter
        self.input_shape = tuple(x.shape[1:])

    def load(self, index: int, generator: torch.Generator | None) -> Tensor:
        x = self.x[index].clone()
        if generator is not None and self.jitter:
            x += torch.rand((), generator=generator)
        return x


def streamed_data(n: int = 37, **options) -> Dataset:
    x, y = images(n)
    stream = TensorStream(x, y, **options)
    return Dataset("toy", stream, y, x[:5], y[:5], x[:7], y[:7], 3)


def epoch(data: Dataset, seed: int = 0, steps=None, device=None, batch_size=8):
    gen = torch.Generator().manual_seed(seed)
    return list(train_batches(data, batch_size, gen, steps, device))


def old_batches(data: Dataset, batch_size: int, gen: torch.Generator, steps=None):
    """The batches before streaming and augmentation existed (the reference)."""
    n = len(data.y_train)
    if steps is None:
        order = list(torch.randperm(n, generator=gen).split(batch_size))
    else:
        size = min(batch_size, n)
        rounds = -(-steps * size // n)
        order = list(
            torch.cat([torch.randperm(n, generator=gen) for _ in range(rounds)])[
                : steps * size
            ].split(size)
        )
    return [(data.x_train[i], data.y_train[i]) for i in order]


@pytest.mark.parametrize("steps", [None, 3, 11])
def test_in_memory_batches_are_bit_identical_to_before(steps):
    data = memory_data()
    ours = epoch(data, seed=4, steps=steps)
    reference = old_batches(data, 8, torch.Generator().manual_seed(4), steps)
    assert len(ours) == len(reference) == steps_per_epoch(data, 8, steps)
    for (x, y), (x_ref, y_ref) in zip(ours, reference, strict=True):
        assert torch.equal(x, x_ref) and torch.equal(y, y_ref)


@pytest.mark.parametrize("device", DEVICES)
def test_augmented_batches_hold_the_same_examples_deterministically(device):
    plain = memory_data()
    augmented = memory_data(augment=BatchAugment(crop=False, flip=True))
    first, again = epoch(augmented, device=device), epoch(augmented, device=device)
    other = epoch(augmented, seed=1, device=device)
    assert any(not torch.equal(a[0], b[0]) for a, b in zip(first, other, strict=False))
    flipped = 0
    for (x, y), (x2, y2), (x_raw, y_raw) in zip(first, again, epoch(plain), strict=True):
        assert x.device.type == y.device.type == torch.device(device).type
        assert torch.equal(x, x2) and torch.equal(y, y2)
        assert torch.equal(y.cpu(), y_raw)  # the augmentation draws after the permutation
        for image, raw in zip(x.cpu(), x_raw, strict=True):
            assert torch.equal(image, raw) or torch.equal(image, raw.flip(-1))
            flipped += not torch.equal(image, raw)
    assert 0 < flipped < 37


@pytest.mark.parametrize("device", DEVICES)
def test_data_on_the_device_gives_batches_there_from_device_indices(device):
    data = memory_data()
    moved = dataclasses.replace(
        data,
        **{f: getattr(data, f).to(device) for f in ("x_train", "y_train", "x_val", "y_val")},
        **{f: getattr(data, f).to(device) for f in ("x_test", "y_test")},
    )
    for (x, y), (x_ref, y_ref) in zip(epoch(moved), epoch(data), strict=True):
        assert x.device.type == torch.device(device).type
        assert torch.equal(x.cpu(), x_ref) and torch.equal(y.cpu(), y_ref)


@pytest.mark.parametrize("steps", [None, 9])
def test_streamed_batches_hold_the_in_memory_examples(steps):
    streamed, memory = streamed_data(), memory_data()
    ours = epoch(streamed, steps=steps)
    assert len(ours) == steps_per_epoch(streamed, 8, steps) == steps_per_epoch(memory, 8, steps)
    for (x, y), (x_ref, y_ref) in zip(ours, epoch(memory, steps=steps), strict=True):
        assert torch.equal(y, y_ref)
        assert torch.equal(x, x_ref)  # no transform: the same tensors


@pytest.mark.parametrize("device", DEVICES)
def test_streamed_random_transforms_do_not_depend_on_num_workers(device):
    serial = epoch(streamed_data(jitter=True), device=device)
    parallel = epoch(streamed_data(jitter=True, num_workers=2), device=device)
    again = epoch(streamed_data(jitter=True), device=device)
    other = epoch(streamed_data(jitter=True), seed=1, device=device)
    for (x, y), (x2, y2), (x3, _) in zip(serial, parallel, again, strict=True):
        assert x.device.type == torch.device(device).type
        assert torch.equal(x, x2) and torch.equal(y, y2) and torch.equal(x, x3)
    assert not torch.equal(serial[0][0], other[0][0])
    plain = epoch(streamed_data())
    assert not torch.equal(serial[0][0], plain[0][0])


def test_a_streamed_split_stands_in_for_x_train_and_refuses_tensor_use():
    data = streamed_data()
    assert data.streamed and not memory_data().streamed
    assert len(data.x_train) == 37 and data.input_shape == (3, 6, 6)
    assert torch.equal(data.example(2), images()[0][:2])
    for use in (lambda: data.x_train[0], lambda: list(data.x_train), lambda: data.x_train[:3]):
        with pytest.raises(NoiseproofError) as info:
            use()
        assert "streamed" in str(info.value) and "\n" not in str(info.value)
    with pytest.raises(ValueError, match="differ in length"):
        Dataset("toy", data.x_train, data.y_train[:3], data.x_val, data.y_val, *images(4), 3)
    with pytest.raises(TypeError, match="x_val"):
        Dataset("toy", *images(4), data.x_train, data.y_train, *images(4), 3)


def test_a_worker_error_is_one_line():
    class Broken(TensorStream):
        def load(self, index, generator):
            raise NoiseproofError(f"/data/img{index}.png: not a readable image (truncated)")

    x, y = images()
    for workers in (0, 2):
        data = Dataset("toy", Broken(x, y, num_workers=workers), y, x, y, x, y, 3)
        with pytest.raises(NoiseproofError) as info:
            epoch(data)
        assert str(info.value).startswith("/data/img") and "\n" not in str(info.value)

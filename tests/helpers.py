"""Small test inputs shared by several test modules (importable: pytest puts tests/ on the path)."""

from __future__ import annotations

import torch

from noiseproof.data.base import Dataset

MINIMAL_EXPERIMENT = {
    "dataset": "digits",
    "model": "mlp",
    "methods": ["standard"],
    "noise": ["relative_gaussian"],
    "levels": [0.1],
}
"""The smallest valid experiment config, for tests that add one section to it."""

QUICK_COMPARE = [
    "--dataset",
    "moons",
    "--model",
    "mlp",
    "--epochs",
    "1",
    "--transfers",
    "2",
    "--levels",
    "0",
]
"""Options of the quickest `compare` run (moons, one epoch, two chips, one level)."""


def digits_grid(transfers: int, epochs: int) -> list[str]:
    """Options of a small real `compare` grid: digits MLP, standard and noise_injection, levels
    0 and 0.5, seed 0, batches of 64, no progress bars."""
    return [
        "--dataset",
        "digits",
        "--model",
        "mlp",
        "--methods",
        "standard,noise_injection",
        "--levels",
        "0,0.5",
        "--transfers",
        str(transfers),
        "--epochs",
        str(epochs),
        "--seed",
        "0",
        "--no-progress",
        "--set",
        "train.batch_size=64",
    ]


def tiny_data(shape=(1, 8, 8), n=96, seed=0) -> Dataset:
    """n random examples of `shape` in 3 classes; validation and test are the first 16."""
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(n, *shape, generator=gen)
    y = torch.randint(0, 3, (n,), generator=gen)
    return Dataset("tiny", x, y, x[:16], y[:16], x[:16], y[:16], num_classes=3)

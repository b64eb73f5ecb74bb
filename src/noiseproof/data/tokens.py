"""Already-tokenized text from an .npz archive (`tokens-npz`): one token stream cut into
next-token windows as `text` cuts it, or ready windows x, y [N, T] per split."""

from __future__ import annotations

import zipfile
import zlib
from pathlib import Path

import numpy as np
import torch
from pydantic import Field

from noiseproof.data.base import Dataset, datasets, split_train_val
from noiseproof.data.builtin import dataset_errors, limit_train
from noiseproof.data.formats import fail, is_integral, open_npz, reason
from noiseproof.data.targets import IGNORE_INDEX, MAX_CLASSES
from noiseproof.data.windows import WindowSpec, windowed
from noiseproof.errors import NoiseproofError
from noiseproof.inputs import Inputs

WINDOW_KEYS = ("x_train", "y_train", "x_val", "y_val", "x_test", "y_test")
KNOWN_KEYS = ("tokens", "vocab_size", *WINDOW_KEYS)


def read_arrays(path: Path) -> dict[str, np.ndarray]:
    """The arrays of a tokens .npz: `tokens`, or x_train, y_train, x_test, y_test (x_val and
    y_val optional), plus an optional `vocab_size`; anything else is refused in one line."""
    with open_npz(path) as archive:
        unknown = sorted(set(archive.files) - set(KNOWN_KEYS))
        if unknown:
            raise fail(path, f"unknown array(s) {unknown} (known: {', '.join(KNOWN_KEYS)})")
        try:
            arrays = {key: archive[key] for key in archive.files}
        except (OSError, ValueError, EOFError, zipfile.BadZipFile, zlib.error) as error:
            raise fail(path, f"damaged array in .npz archive ({reason(error)})") from None
    windows = [key for key in WINDOW_KEYS if key in arrays]
    if "tokens" in arrays and windows:
        raise fail(path, f"holds both 'tokens' and {windows}: give one token stream or windows")
    if "tokens" not in arrays:
        needed = ("x_train", "y_train", "x_test", "y_test")
        missing = [key for key in needed if key not in arrays]
        if missing:
            raise fail(path, f"needs 'tokens' or the arrays {list(needed)} (missing {missing})")
        if ("x_val" in arrays) != ("y_val" in arrays):
            raise fail(path, "x_val and y_val come together (give both or neither)")
    return arrays


def stored_vocab_size(
    path: Path, arrays: dict[str, np.ndarray], declared: int | None
) -> int | None:
    """The vocabulary size from the spec or the file's `vocab_size` array (they must agree)."""
    if "vocab_size" not in arrays:
        return declared
    value = arrays["vocab_size"]
    if value.size != 1 or not is_integral(value) or int(value.reshape(())) < 2:
        raise fail(path, f"'vocab_size' must be one integer >= 2, got {value.tolist()}")
    stored = int(value.reshape(()))
    if declared is not None and declared != stored:
        raise fail(path, f"'vocab_size' is {stored} but the spec's vocab_size is {declared}")
    return stored


def token_ids(path: Path, name: str, values: np.ndarray, ndim: int) -> np.ndarray:
    """`values` as int64 when it holds whole numbers of `ndim` dimensions with at least one
    token, else a one-line refusal naming the array."""
    shape = "[L]" if ndim == 1 else "[N, T]"
    if values.ndim != ndim or values.size == 0 or not is_integral(values):
        raise fail(
            path, f"'{name}' must be integer token ids {shape}, got {values.dtype} {values.shape}"
        )
    return values.astype(np.int64)


def check_ids(path: Path, name: str, ids: np.ndarray, vocab_size: int, targets: bool) -> None:
    """Refuse ids outside [0, vocab_size) in one line naming the array and its extremes;
    targets may also hold IGNORE_INDEX."""
    kept = ids[ids != IGNORE_INDEX] if targets else ids
    if kept.size and (kept.min() < 0 or kept.max() >= vocab_size):
        ignored = f" (other than the ignore index {IGNORE_INDEX})" if targets else ""
        raise fail(
            path,
            f"'{name}' holds token ids outside [0, {vocab_size}){ignored}: largest "
            f"{kept.max()}, smallest {kept.min()}",
        )


def inferred_vocab_size(path: Path, arrays: dict[str, np.ndarray]) -> int:
    """max id + 1 over every array of ids (targets' IGNORE_INDEX left out), at least 2; over
    MAX_CLASSES refused as a likely corrupt id unless vocab_size is given."""
    largest = max(int(ids[ids != IGNORE_INDEX].max(initial=0)) for ids in arrays.values())
    if largest + 1 > MAX_CLASSES:
        raise fail(
            path,
            f"token ids go up to {largest}: a vocabulary over {MAX_CLASSES:,} is refused as a "
            "likely corrupt id; set vocab_size to allow it",
        )
    return max(2, largest + 1)


@datasets.register("tokens-npz")
class TokensNpz(WindowSpec):
    """Already-tokenized text: an .npz with one token stream, or windows x, y [N, T] per split."""

    path: str = Field(
        ...,
        description=(
            ".npz with 'tokens' (one 1-d stream, cut into windows) or x_train, y_train, x_test, "
            "y_test (x_val, y_val optional) int [N, T]; optional 'vocab_size'"
        ),
    )
    val_fraction: float = Field(
        0.1,
        ge=0.0,
        lt=1.0,
        description="validation share of the token stream (of given training windows)",
    )
    split_seed: int = Field(
        0, description="seed of the max_train choice (and of a held-out share of given windows)"
    )
    vocab_size: int | None = Field(None, ge=2, description="vocabulary size; None = max id + 1")
    tokenizer: str = Field("ids", description="name of the tokenizer that made the ids (recorded)")

    def load(self) -> Dataset:
        """Token windows int64 [N, T], num_classes = vocab_size, vocabulary {"tokenizer":
        tokenizer, "vocab_size": V}. Given windows without x_val/y_val: val_fraction of the
        training windows held out by a shuffle seeded with split_seed (test_fraction, block_size
        and stride apply to a token stream only)."""
        path = Path(self.path).expanduser()
        with dataset_errors(self.registered_name):
            arrays = read_arrays(path)
            declared = stored_vocab_size(path, arrays, self.vocab_size)
            ids = {
                key: token_ids(path, key, value, 1 if key == "tokens" else 2)
                for key, value in arrays.items()
                if key != "vocab_size"
            }
            vocab_size = declared if declared is not None else inferred_vocab_size(path, ids)
            for key, values in ids.items():
                check_ids(path, key, values, vocab_size, targets=key.startswith("y_"))
            vocabulary = {"tokenizer": self.tokenizer, "vocab_size": vocab_size}
            if "tokens" in ids:
                return windowed(self, torch.from_numpy(ids["tokens"]), vocab_size, vocabulary)
            return self.given_windows(path, ids, vocab_size, vocabulary)

    def given_windows(
        self, path: Path, ids: dict[str, np.ndarray], vocab_size: int, vocabulary: dict
    ) -> Dataset:
        """The Dataset of the file's own windows (x and y of a split alike in shape, every
        split as long per example as train)."""
        length = ids["x_train"].shape[1]
        for split in ("train", "val", "test"):
            if f"x_{split}" not in ids:
                continue
            x, y = ids[f"x_{split}"], ids[f"y_{split}"]
            if x.shape != y.shape or x.shape[1] != length:
                raise fail(
                    path,
                    f"x_{split} {x.shape} and y_{split} {y.shape} must share one shape [N, "
                    f"{length}] (the windows of x_train)",
                )
        tensors = {key: torch.from_numpy(values) for key, values in ids.items()}
        x_train: Inputs  # one tensor; split_train_val's signature takes any inputs
        x_val: Inputs
        x_train, y_train = limit_train(
            tensors["x_train"], tensors["y_train"], self.max_train, self.split_seed
        )
        if "x_val" in tensors:
            x_val, y_val = tensors["x_val"], tensors["y_val"]
        else:
            x_train, y_train, x_val, y_val = split_train_val(
                x_train, y_train, self.val_fraction, self.split_seed
            )
        try:
            return Dataset(
                name=self.registered_name,
                x_train=x_train,
                y_train=y_train,
                x_val=x_val,
                y_val=y_val,
                x_test=tensors["x_test"][: self.max_test],
                y_test=tensors["y_test"][: self.max_test],
                num_classes=vocab_size,
                vocabulary=vocabulary,
            )
        except (ValueError, TypeError) as error:
            raise NoiseproofError(str(error)) from None

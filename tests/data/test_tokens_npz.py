"""The tokens-npz dataset: a token stream or ready windows, vocab_size, ignored targets and
one-line refusals of bad ids."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from noiseproof.data import IGNORE_INDEX, load_dataset
from noiseproof.errors import NoiseproofError


def npz(tmp_path, **arrays) -> str:
    path = tmp_path / "tokens.npz"
    np.savez(path, **arrays)
    return str(path)


def error_text(spec: dict) -> str:
    with pytest.raises(NoiseproofError) as info:
        load_dataset(spec)
    message = str(info.value)
    assert "\n" not in message and "dataset 'tokens-npz'" in message
    return message


def windows(rng, n: int, length: int, vocab: int) -> tuple[np.ndarray, np.ndarray]:
    x = rng.integers(0, vocab, (n, length))
    y = rng.integers(0, vocab, (n, length))
    y[:, :2] = IGNORE_INDEX  # a prompt without targets
    return x, y


def test_token_stream_is_cut_like_text(tmp_path):
    stream = np.arange(1000) % 37
    path = npz(tmp_path, tokens=stream.astype(np.int32))
    data = load_dataset({"name": "tokens-npz", "path": path, "block_size": 16})
    assert data.num_classes == 37 and data.vocabulary == {"tokenizer": "ids", "vocab_size": 37}
    assert data.x_train.dtype == torch.int64 and data.x_train.shape[1] == 16
    assert data.x_train[0].tolist() == stream[:16].tolist()
    assert data.y_train[0].tolist() == stream[1:17].tolist()
    assert data.x_test[0].tolist() == stream[900:916].tolist()  # the last tenth
    wide = load_dataset(
        {
            "name": "tokens-npz",
            "path": path,
            "vocab_size": 50,
            "tokenizer": "my-bpe",
            "block_size": 8,
        }
    )
    assert wide.num_classes == 50 and wide.vocabulary == {"tokenizer": "my-bpe", "vocab_size": 50}


def test_given_windows_with_and_without_validation(tmp_path):
    rng = np.random.default_rng(0)
    x_train, y_train = windows(rng, 40, 8, 11)
    x_test, y_test = windows(rng, 6, 8, 11)
    x_val, y_val = windows(rng, 5, 8, 11)
    arrays = {"x_train": x_train, "y_train": y_train, "x_test": x_test, "y_test": y_test}
    held = load_dataset(
        {"name": "tokens-npz", "path": npz(tmp_path, **arrays), "val_fraction": 0.25}
    )
    assert (len(held.x_train), len(held.x_val), len(held.x_test)) == (30, 10, 6)
    assert held.targets == "tokens" and (held.y_train == IGNORE_INDEX).any()
    path = npz(tmp_path, **arrays, x_val=x_val, y_val=y_val, vocab_size=np.array(20))
    given = load_dataset({"name": "tokens-npz", "path": path, "max_train": 7, "max_test": 2})
    assert (len(given.x_train), len(given.x_val), len(given.x_test)) == (7, 5, 2)
    assert given.num_classes == 20 and torch.equal(given.x_val, torch.from_numpy(x_val))


def test_refusals(tmp_path):
    rng = np.random.default_rng(0)
    x, y = windows(rng, 10, 4, 5)
    base = {"x_train": x, "y_train": y, "x_test": x, "y_test": y}

    def message(spec: dict | None = None, **arrays) -> str:
        return error_text({"name": "tokens-npz", "path": npz(tmp_path, **arrays), **(spec or {})})

    too_big = x.copy()
    too_big[3, 1] = 9
    text = message({"vocab_size": 5}, **{**base, "x_test": too_big})
    assert "'x_test' holds token ids outside [0, 5): largest 9, smallest 0" in text
    negative = x.copy()
    negative[0, 0] = IGNORE_INDEX
    assert "'x_train' holds token ids outside [0, 5)" in message(**{**base, "x_train": negative})
    bad_y = y.copy()
    bad_y[0, 0] = -1
    text = message(**{**base, "y_train": bad_y})
    assert "'y_train' holds token ids outside [0, 5) (other than the ignore index -100)" in text
    absurd = np.array([0, 1, 2**31 - 1] * 100)
    assert "token ids go up to 2147483647" in message(tokens=absurd)
    assert "but the spec's vocab_size is 6" in message(
        {"vocab_size": 6}, **base, vocab_size=np.array(5)
    )
    assert "unknown array(s) ['x_valid']" in message(**base, x_valid=x)
    assert "holds both 'tokens'" in message(**base, tokens=np.arange(10))
    assert "missing ['y_test']" in message(x_train=x, y_train=y, x_test=x)
    assert "x_val and y_val come together" in message(**base, x_val=x)
    assert "must share one shape" in message(**{**base, "y_test": y[:, :3]})
    assert "'tokens' must be integer token ids [L]" in message(tokens=np.linspace(0, 1, 50))
    assert "the train split holds" in message({"block_size": 64}, tokens=np.arange(50) % 7)

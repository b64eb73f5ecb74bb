"""Next-token examples from a token stream: split by position, cut into windows.

The stream is split in order, train first, then validation, then test (so no window spans two
splits and validation/test text is never seen in training), and each part is cut into windows
x = tokens[i : i + block_size], y = tokens[i + 1 : i + block_size + 1] every `stride` tokens
(the causal language-modelling setup of nanoGPT / GPT-2: y is x shifted by one).
"""

from __future__ import annotations

from pydantic import Field, model_validator
from torch import Tensor

from noiseproof.data.base import Dataset, DatasetSpec
from noiseproof.data.builtin import limit_train
from noiseproof.errors import NoiseproofError

SPLITS = ("train", "val", "test")


class WindowSpec(DatasetSpec):
    """The keys of every dataset cut into next-token windows from one token stream."""

    val_fraction: float = Field(
        0.1, ge=0.0, lt=1.0, description="share of the token stream (after train) for validation"
    )
    test_fraction: float = Field(
        0.1, gt=0.0, lt=1.0, description="last share of the token stream, held out as test"
    )
    split_seed: int = Field(0, description="seed of the max_train choice of training windows")
    block_size: int = Field(128, ge=1, description="tokens per example (x and y windows)")
    stride: int | None = Field(
        None, ge=1, description="tokens between window starts; None = block_size (no overlap)"
    )

    @model_validator(mode="after")
    def train_left(self) -> WindowSpec:
        """One line when validation and test would leave no training text."""
        if self.val_fraction + self.test_fraction >= 1.0:
            raise ValueError(
                f"val_fraction + test_fraction must be < 1 (got {self.val_fraction} + "
                f"{self.test_fraction}): the rest is the training text"
            )
        return self


def split_stream(ids: Tensor, val_fraction: float, test_fraction: float) -> dict[str, Tensor]:
    """{'train', 'val', 'test'}: consecutive parts of `ids`, the last round(L * test_fraction)
    tokens test, the round(L * val_fraction) before them validation, the rest train."""
    n = len(ids)
    n_test, n_val = round(n * test_fraction), round(n * val_fraction)
    end_train, end_val = n - n_val - n_test, n - n_test
    return {"train": ids[:end_train], "val": ids[end_train:end_val], "test": ids[end_val:]}


def windows(part: Tensor, block_size: int, stride: int, split: str) -> tuple[Tensor, Tensor]:
    """(x, y) int64 [N, block_size]: windows of `part` starting every `stride` tokens, y one
    token ahead of x; N = (len - 1 - block_size) // stride + 1. They are views of `part` (no
    copy, overlapping when stride < block_size). A part shorter than block_size + 1 tokens is
    refused in one line naming the split."""
    if len(part) < block_size + 1:
        share = (
            "lower val_fraction or test_fraction" if split == "train" else f"raise {split}_fraction"
        )
        raise NoiseproofError(
            f"the {split} split holds {len(part)} tokens, too few for one window of "
            f"block_size {block_size} (block_size + 1 tokens): lower block_size, or {share}"
        )
    return part[:-1].unfold(0, block_size, stride), part[1:].unfold(0, block_size, stride)


def windowed(spec: WindowSpec, ids: Tensor, vocab_size: int, vocabulary: dict | None) -> Dataset:
    """The Dataset of next-token windows of the stream `ids` (int64 [L]): split by position
    (`split_stream`), cut by `windows`, train keeping max_train windows (a shuffle seeded with
    split_seed), test the first max_test; num_classes = vocab_size. An empty validation part
    (val_fraction 0) gives no validation windows."""
    stride = spec.stride or spec.block_size
    parts = split_stream(ids, spec.val_fraction, spec.test_fraction)
    cut = {}
    for split, part in parts.items():
        if split == "val" and spec.val_fraction == 0:
            empty = part.new_empty((0, spec.block_size))
            cut[split] = (empty, empty)
        else:
            cut[split] = windows(part, spec.block_size, stride, split)
    x_train, y_train = limit_train(*cut["train"], spec.max_train, spec.split_seed)
    x_test, y_test = (t[: spec.max_test] for t in cut["test"])
    try:
        return Dataset(
            name=spec.registered_name,
            x_train=x_train,
            y_train=y_train,
            x_val=cut["val"][0],
            y_val=cut["val"][1],
            x_test=x_test,
            y_test=y_test,
            num_classes=vocab_size,
            vocabulary=vocabulary,
        )
    except (ValueError, TypeError) as error:
        raise NoiseproofError(str(error)) from None

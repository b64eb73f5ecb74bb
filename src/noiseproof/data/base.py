"""The dataset container every loader returns, and the spec base class every loader derives from."""

from __future__ import annotations

import json
from abc import abstractmethod
from dataclasses import dataclass, replace
from typing import Any, ClassVar

import torch
from pydantic import BaseModel, ConfigDict, Field, model_validator
from torch import Tensor
from torch.utils.data import Dataset as TorchDataset
from torch.utils.data import default_collate

from noiseproof.data.augment import BatchAugment
from noiseproof.data.streaming import StreamedSplit
from noiseproof.data.targets import IGNORE_INDEX as IGNORE_INDEX  # token targets' "no target"
from noiseproof.data.targets import (
    check_agreement,
    check_targets,
    empty_like_targets,
    inferred_classes,
    regression_outputs,
    target_kind,
)
from noiseproof.inputs import Inputs, check_inputs, count, leaves, shapes, take, to
from noiseproof.registry import Registry


@dataclass(frozen=True)
class Dataset:
    """Train / validation / test splits: inputs x (a float tensor [N, *input_shape], or a tuple or
    dict of tensors [N, ...] that reach the model's forward as positional or keyword arguments)
    and targets y (noiseproof.data.targets): class indices int64 [N] in [0, num_classes), token
    targets int64 [N, T] in [0, num_classes) or IGNORE_INDEX (-100, no target there), or
    regression targets float32 [N] / [N, D] with num_classes None. Every split holds the same
    kind and per-example shape of targets (an empty y_val takes y_train's). Checked at
    construction: types, matching lengths, labels in range, every floating-point value finite;
    a problem is a ValueError/TypeError naming the split.

    A training split too large for memory, or with per-example random transforms, is streamed:
    x_train is then a `StreamedSplit` (read through a DataLoader by `train_batches`; indexing
    it is refused in one line) and y_train its labels. `augment` transforms every in-memory
    training batch (noiseproof.data.augment), None: batches as stored. `vocabulary` describes
    the tokenizer that produced token inputs or targets, JSON-ready (noiseproof.data.vocabulary),
    e.g. {"tokenizer": "byte"}; None when there is none.

    >>> import torch, noiseproof as nf
    >>> g = nf.generator(0, "data")
    >>> x, x_test = torch.randn(100, 4, generator=g), torch.randn(20, 4, generator=g)
    >>> data = nf.Dataset.from_tensors(x, torch.arange(100) % 3, x_test, torch.arange(20) % 3)
    >>> data.input_shape, data.num_outputs, len(data.x_train), len(data.x_val)  # 10 % held out
    ((4,), 3, 90, 10)
    """

    name: str
    x_train: Inputs | StreamedSplit
    y_train: Tensor
    x_val: Inputs
    y_val: Tensor
    x_test: Inputs
    y_test: Tensor
    num_classes: int | None
    one_logit: bool = False
    augment: BatchAugment | None = None
    vocabulary: dict | None = None

    def __post_init__(self) -> None:
        classes = self.num_classes
        if classes is not None and (isinstance(classes, bool) or not isinstance(classes, int)):
            raise TypeError(
                f"num_classes must be an int (None for regression targets), got {classes!r}"
            )
        if classes is not None and classes < 2:
            raise ValueError(f"num_classes must be >= 2, got {classes}")
        if self.one_logit and classes != 2:
            raise ValueError("one_logit needs num_classes == 2 (a binary task)")
        if self.augment is not None and not isinstance(self.augment, BatchAugment):
            raise TypeError(f"augment must be a BatchAugment or None, got {self.augment!r}")
        object.__setattr__(self, "vocabulary", _json_ready(self.vocabulary))
        for split in ("train", "val", "test"):
            x = getattr(self, f"x_{split}")
            if not (split == "train" and isinstance(x, StreamedSplit)):
                x = check_inputs(x, f"x_{split}")
                object.__setattr__(self, f"x_{split}", x)
            y = getattr(self, f"y_{split}")
            if split == "val" and isinstance(y, Tensor) and y.dim() and len(y) == 0:
                y = empty_like_targets(y, self.y_train)
            if split != "train":
                check_agreement(y, f"y_{split}", self.y_train)
            y = check_targets(y, f"y_{split}", classes)
            n = len(x) if isinstance(x, StreamedSplit) else count(x)
            if len(y) != n:
                raise ValueError(f"x_{split} and y_{split} differ in length ({n} vs {len(y)})")
            object.__setattr__(self, f"y_{split}", y)
        if not len(self.y_train) or not len(self.y_test):
            raise ValueError("a dataset needs at least one train and one test example")

    @property
    def input_shape(self) -> Any:
        """Per-example input shape (a tuple/dict of shapes for several inputs)."""
        if isinstance(self.x_train, StreamedSplit):  # self.streamed, narrowed for mypy
            return self.x_train.input_shape
        return shapes(self.x_train)

    @property
    def streamed(self) -> bool:
        """Whether the training split is streamed (x_train a StreamedSplit, not tensors)."""
        return isinstance(self.x_train, StreamedSplit)

    @property
    def num_outputs(self) -> int:
        """Outputs the model must produce: 1 for a binary task with one logit, num_classes for
        class or token targets, and for regression 1 ([N] targets) or D ([N, D] targets)."""
        if self.one_logit:
            return 1
        if self.num_classes is not None:
            return self.num_classes
        return regression_outputs(self.y_train)

    @property
    def targets(self) -> str:
        """The kind of targets: 'classes' (int [N]), 'tokens' (int [N, T]) or 'regression'
        (float [N] / [N, D]); noiseproof.data.targets."""
        return target_kind(self.y_train)

    def to(self, device: torch.device | str) -> Dataset:
        """This dataset with every split's tensors on `device` (itself when already there).

        Called once before training or evaluation, so batches are cut on the device with no
        per-step copy between host and device. A streamed training split stays where it is
        (its batches are read and moved by `train_batches`); its labels move.
        """
        device = torch.device(device)
        fields = {
            name: value
            for name, value in vars(self).items()
            if name[:2] in ("x_", "y_") and not isinstance(value, StreamedSplit)
        }
        tensors = [t for value in fields.values() for t in leaves(value)]
        if all(_on(t, device) for t in tensors):
            return self
        moved: dict[str, Any] = {name: to(value, device) for name, value in fields.items()}
        return replace(self, **moved)

    def example(self, n: int = 1) -> Inputs:
        """The first `n` training inputs, e.g. for a probing forward pass (of a streamed
        split: read with the evaluation transform)."""
        if isinstance(self.x_train, StreamedSplit):  # self.streamed, narrowed for mypy
            return self.x_train.examples(n)
        return take(self.x_train, slice(0, n))

    @classmethod
    def from_tensors(
        cls,
        x_train: Any,
        y_train: Tensor,
        x_test: Any,
        y_test: Tensor,
        *,
        x_val: Any = None,
        y_val: Tensor | None = None,
        val_fraction: float = 0.1,
        split_seed: int = 0,
        num_classes: int | None = None,
        name: str = "tensors",
    ) -> Dataset:
        """A Dataset from in-memory tensors (inputs may be tuples or dicts of tensors; targets
        class indices [N], token targets [N, T] or float regression targets [N] / [N, D]).

        Without (x_val, y_val), `val_fraction` of the training examples is held out by a seeded
        shuffle (`split_seed`). For integer targets num_classes defaults to max(label) + 1 over
        all splits, IGNORE_INDEX left out (at least 2; over a million is refused as a likely
        corrupt label); for float targets it stays None (regression).
        """
        if (x_val is None) != (y_val is None):
            raise ValueError("x_val and y_val come together (give both or neither)")
        if isinstance(val_fraction, bool) or not 0.0 <= val_fraction < 1.0:
            raise ValueError(f"val_fraction must be in [0, 1), got {val_fraction!r}")
        for split, y in (("y_train", y_train), ("y_test", y_test)):
            if not isinstance(y, Tensor):
                raise TypeError(f"{split} must be a tensor of targets, got {type(y).__name__}")
        x_train = check_inputs(x_train, "x_train")
        if x_val is None:
            if len(y_train) != count(x_train):
                raise ValueError(
                    f"x_train and y_train differ in length ({count(x_train)} vs {len(y_train)})"
                )
            x_train, y_train, x_val, y_val = split_train_val(
                x_train, y_train, val_fraction, split_seed
            )
        assert x_val is not None and y_val is not None  # given together, or split off above
        if num_classes is None:
            splits = (("y_train", y_train), ("y_val", y_val), ("y_test", y_test))
            num_classes = inferred_classes(splits)
        return cls(name, x_train, y_train, x_val, y_val, x_test, y_test, num_classes)

    @classmethod
    def from_torch(
        cls,
        train: TorchDataset,
        test: TorchDataset,
        *,
        val: TorchDataset | None = None,
        val_fraction: float = 0.1,
        split_seed: int = 0,
        num_classes: int | None = None,
        name: str = "torch",
    ) -> Dataset:
        """A Dataset from torch.utils.data datasets yielding (inputs, target) pairs, collated
        into memory (inputs may be tuples or dicts of tensors; targets ints or 0-d tensors for
        class indices, 1-d int tensors [T] for token targets, floats or float tensors for
        regression: `from_tensors` reads the kind from the collated dtype)."""

        def collated(dataset: Any, split: str) -> tuple[Inputs, Tensor]:
            if not isinstance(dataset, TorchDataset) and not hasattr(dataset, "__getitem__"):
                raise TypeError(f"{split} must be a torch Dataset, got {type(dataset).__name__}")
            items = [dataset[i] for i in range(len(dataset))]
            if not items or not all(isinstance(it, tuple | list) and len(it) == 2 for it in items):
                raise ValueError(f"{split} must yield (inputs, target) pairs")
            x, y = default_collate(items)
            x = tuple(x) if isinstance(x, list) else x
            return x, torch.as_tensor(y)

        x_train, y_train = collated(train, "train")
        x_test, y_test = collated(test, "test")
        x_val, y_val = collated(val, "val") if val is not None else (None, None)
        return cls.from_tensors(
            x_train,
            y_train,
            x_test,
            y_test,
            x_val=x_val,
            y_val=y_val,
            val_fraction=val_fraction,
            split_seed=split_seed,
            num_classes=num_classes,
            name=name,
        )


def _json_ready(vocabulary: Any) -> dict | None:
    """A detached copy of a `vocabulary` description: None, or a dict that JSON can write
    (it travels in checkpoints) with a string 'tokenizer'; else a one-line TypeError/ValueError."""
    if vocabulary is None:
        return None
    if not isinstance(vocabulary, dict):
        raise TypeError(f"vocabulary must be a dict or None, got {type(vocabulary).__name__}")
    if not isinstance(vocabulary.get("tokenizer"), str):
        raise ValueError("vocabulary needs a string 'tokenizer' (e.g. 'char', 'byte', a folder)")
    try:
        return json.loads(json.dumps(vocabulary, allow_nan=False))
    except (TypeError, ValueError) as error:
        raise ValueError(f"vocabulary must be JSON-serialisable ({error})") from None


def _on(tensor: Tensor, device: torch.device) -> bool:
    """Whether `tensor` is on `device` ('cuda' matches the current CUDA device's index)."""
    if tensor.device.type != device.type:
        return False
    return device.index is None or tensor.device.index == device.index


class DatasetSpec(BaseModel):
    """Base of every dataset loader: fields are its parameters, `load()` builds the Dataset."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    registered_name: ClassVar[str] = ""

    val_fraction: float = Field(0.1, ge=0.0, lt=1.0, description="share of train held out")
    split_seed: int = Field(0, description="seed of the train/validation split")
    max_train: int | None = Field(None, gt=0, description="keep at most this many train examples")
    max_test: int | None = Field(None, gt=0, description="keep at most this many test examples")

    @model_validator(mode="before")
    @classmethod
    def image_keys(cls, values: Any) -> Any:
        """One clear line for an image-only key (encode, sequence: noiseproof.data.imagespec)
        given to a dataset that has no images."""
        if isinstance(values, dict):
            for key in ("encode", "sequence"):
                if key in values and key not in cls.model_fields:
                    raise ValueError(
                        f"{key} applies to image datasets only (e.g. mnist, fashion-mnist, digits, "
                        f"idx, cifar10, cifar100, npz); this one has no images"
                    )
        return values

    @abstractmethod
    def load(self) -> Dataset:
        """Read (or generate) the data and return the three splits."""

    def spec(self) -> dict:
        return {"name": self.registered_name, **self.model_dump(mode="json")}


datasets: Registry[DatasetSpec] = Registry("dataset")


def split_train_val(
    x: Inputs, y: Tensor, val_fraction: float, seed: int
) -> tuple[Inputs, Tensor, Inputs, Tensor]:
    """Shuffle with a seeded generator and hold out `val_fraction` of (x, y) as validation."""
    order = torch.randperm(len(y), generator=torch.Generator().manual_seed(seed))
    n_val = int(round(len(y) * val_fraction))
    val, train = order[:n_val], order[n_val:]
    return take(x, train), y[train], take(x, val), y[val]

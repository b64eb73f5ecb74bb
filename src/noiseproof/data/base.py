"""The dataset container every loader returns, and the spec base class every loader derives from."""

from __future__ import annotations

from abc import abstractmethod
from dataclasses import dataclass
from typing import ClassVar

import torch
from pydantic import BaseModel, ConfigDict, Field
from torch import Tensor

from noiseproof.registry import Registry


@dataclass(frozen=True)
class Dataset:
    """Train / validation / test tensors: x float32 [N, *input_shape], y int64 [N] class indices."""

    name: str
    x_train: Tensor
    y_train: Tensor
    x_val: Tensor
    y_val: Tensor
    x_test: Tensor
    y_test: Tensor
    num_classes: int
    one_logit: bool = False

    @property
    def input_shape(self) -> tuple[int, ...]:
        return tuple(self.x_train.shape[1:])

    @property
    def num_outputs(self) -> int:
        """Logits the model must produce: 1 for a binary task with one logit, else num_classes."""
        return 1 if self.one_logit else self.num_classes


class DatasetSpec(BaseModel):
    """Base of every dataset loader: fields are its parameters, `load()` builds the Dataset."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    registered_name: ClassVar[str] = ""

    val_fraction: float = Field(0.1, ge=0.0, lt=1.0, description="share of train held out")
    split_seed: int = Field(0, description="seed of the train/validation split")
    max_train: int | None = Field(None, gt=0, description="keep at most this many train examples")
    max_test: int | None = Field(None, gt=0, description="keep at most this many test examples")

    @abstractmethod
    def load(self) -> Dataset:
        """Read (or generate) the data and return the three splits."""

    def spec(self) -> dict:
        return {"name": self.registered_name, **self.model_dump(mode="json")}


datasets: Registry[DatasetSpec] = Registry("dataset")


def split_train_val(
    x: Tensor, y: Tensor, val_fraction: float, seed: int
) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """Shuffle with a seeded generator and hold out `val_fraction` of (x, y) as validation."""
    order = torch.randperm(len(x), generator=torch.Generator().manual_seed(seed))
    n_val = int(round(len(x) * val_fraction))
    val, train = order[:n_val], order[n_val:]
    return x[train], y[train], x[val], y[val]

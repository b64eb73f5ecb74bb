"""The `augment` and `normalize` keys every image dataset takes, and how an in-memory Dataset
gets them: normalised splits and a per-batch augmentation."""

from __future__ import annotations

import dataclasses
from typing import Any

from pydantic import Field, field_validator
from torch import Tensor

from noiseproof.data.augment import AUGMENT_HELP, batch_augment, check_augment, padding_fill
from noiseproof.data.base import Dataset, DatasetSpec
from noiseproof.data.normalize import NORMALIZE_HELP, channel_stats, check_normalize, standardize
from noiseproof.errors import NoiseproofError

Normalize = bool | str | dict[str, tuple[float, ...]]


class ImageSpec(DatasetSpec):
    """Base of the image datasets: training augmentation and per-channel normalisation."""

    augment: bool | str = Field(False, description=AUGMENT_HELP)
    normalize: Normalize = Field(False, description=NORMALIZE_HELP)

    @field_validator("augment", mode="before")
    @classmethod
    def valid_augment(cls, value: Any) -> bool | str:
        """One clear line for a bad augment value (noiseproof.data.augment.check_augment)."""
        return check_augment(value)

    @field_validator("normalize", mode="before")
    @classmethod
    def valid_normalize(cls, value: Any) -> Normalize:
        """One clear line for a bad normalize value (noiseproof.data.normalize)."""
        return check_normalize(value)

    def prepared(self, data: Dataset) -> Dataset:
        """`data` with every split normalised (statistics of `true` from x_train) and the
        training batches augmented; a mismatch (e.g. 3 means for 1-channel images, augment on
        non-image inputs) is one NoiseproofError line naming the dataset."""
        try:
            stats = channel_stats(self.normalize, data.x_train)
            if stats is not None:
                data = dataclasses.replace(
                    data,
                    x_train=standardize(data.x_train, *stats),
                    x_val=standardize(data.x_val, *stats),
                    x_test=standardize(data.x_test, *stats),
                )
            augment = batch_augment(self.augment, padding_fill(stats))
            if augment is not None and not (
                isinstance(data.x_train, Tensor) and data.x_train.dim() == 4
            ):
                shape = tuple(data.x_train.shape)
                raise ValueError(f"augment needs images [N, C, H, W], got inputs of shape {shape}")
            return dataclasses.replace(data, augment=augment)
        except ValueError as error:
            raise NoiseproofError(f"dataset '{self.registered_name}': {error}") from None

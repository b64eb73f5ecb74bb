"""The `augment`, `normalize`, `encode` and `sequence` keys every image dataset takes, and how
an in-memory Dataset gets them: normalised splits, a per-batch augmentation, then spike-encoded
or sequence inputs (noiseproof.data.temporal)."""

from __future__ import annotations

import dataclasses
from typing import Any, ClassVar, Literal

from pydantic import Field, field_validator, model_validator
from torch import Tensor

from noiseproof.data.augment import AUGMENT_HELP, batch_augment, check_augment, padding_fill
from noiseproof.data.base import Dataset, DatasetSpec
from noiseproof.data.normalize import NORMALIZE_HELP, channel_stats, check_normalize, standardize
from noiseproof.data.temporal import ENCODE_HELP, SEQUENCE_HELP, EncodeSpec, encoded, sequenced
from noiseproof.errors import NoiseproofError

Normalize = bool | str | dict[str, tuple[float, ...]]


class ImageSpec(DatasetSpec):
    """Base of the image datasets: training augmentation, per-channel normalisation, and
    temporal inputs for spiking networks (a spike encoding or a sequence of rows/pixels)."""

    in_memory: ClassVar[bool] = True  # False: the training split is streamed (no encode/sequence)

    augment: bool | str = Field(False, description=AUGMENT_HELP)
    normalize: Normalize = Field(False, description=NORMALIZE_HELP)
    encode: EncodeSpec | None = Field(None, description=ENCODE_HELP)
    sequence: Literal["rows", "pixels"] | None = Field(None, description=SEQUENCE_HELP)

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

    @model_validator(mode="after")
    def temporal_compatible(self) -> ImageSpec:
        """One clear line when `encode` or `sequence` meets a setting it cannot follow: each
        other, augment (batches of images [B, C, H, W] only), normalize before a rate or latency
        code (intensities must stay in [0, 1]), a streamed training split."""
        temporal = "encode" if self.encode is not None else "sequence" if self.sequence else None
        if temporal is None:
            return self
        if self.encode is not None and self.sequence is not None:
            raise ValueError("encode and sequence exclude each other (choose one)")
        if not self.in_memory:
            raise ValueError(f"{temporal} needs the images in memory; this dataset streams them")
        if self.augment is not False:
            raise ValueError(f"augment works on images, not on {temporal} inputs: drop one")
        if self.encode is not None and self.encode.kind != "direct" and self.normalize is not False:
            raise ValueError(
                f"encode '{self.encode.kind}' needs intensities in [0, 1]: set normalize: false"
            )
        return self

    def prepared(self, data: Dataset) -> Dataset:
        """`data` with every split normalised (statistics of `true` from x_train) and the
        training batches augmented, then encoded or read as sequences; a mismatch (e.g. 3 means
        for 1-channel images, augment on non-image inputs, intensities outside [0, 1] for a
        rate code, an encoding over max_gb) is one NoiseproofError line naming the dataset."""
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
            data = dataclasses.replace(data, augment=augment)
            if self.encode is not None:
                return encoded(data, self.encode)
            return sequenced(data, self.sequence) if self.sequence else data
        except ValueError as error:
            raise NoiseproofError(f"dataset '{self.registered_name}': {error}") from None

"""Regression datasets: float targets, num_classes None (noiseproof.data.targets)."""

from __future__ import annotations

import dataclasses
from typing import cast

from pydantic import Field
from torch import Tensor

from noiseproof.data.base import Dataset, DatasetSpec, datasets
from noiseproof.data.builtin import dataset_errors, finish, rescaled
from noiseproof.data.formats import holdout


def standardized_targets(data: Dataset) -> Dataset:
    """`data` with every split's targets y replaced by (y - mean) / std, the mean and the
    population std of y_train (per column for [N, D]; a zero std counts as 1)."""
    mean, std = data.y_train.mean(dim=0), data.y_train.std(dim=0, correction=0)
    std = std.where(std > 0, std.new_ones(()))

    def scaled(y: Tensor) -> Tensor:
        return (y - mean) / std

    return dataclasses.replace(
        data, y_train=scaled(data.y_train), y_val=scaled(data.y_val), y_test=scaled(data.y_test)
    )


@datasets.register("diabetes")
class Diabetes(DatasetSpec):
    """Diabetes progression (Efron et al. 2004, scikit-learn's load_diabetes): 442 x 10, float y."""

    test_fraction: float = Field(0.2, gt=0.0, lt=1.0, description="share held out as test")
    seed: int = Field(0, description="seed of the train/test split")
    standardize_target: bool = Field(
        True, description="y as (y - mean) / std of the training targets; false: raw y (25-346)"
    )

    def load(self) -> Dataset:
        """x [N, 10] float32 (age, sex, bmi, blood pressure, six serum measurements: the raw
        values, standardised by the training split's mean and population std), y [N] float32
        (disease progression one year after baseline, standardised the same way unless
        standardize_target is false). A seeded test holdout, then val_fraction of train."""
        from sklearn.datasets import load_diabetes  # here: scikit-learn takes ~1 s to import

        bunch = load_diabetes(scaled=False)
        with dataset_errors(self.registered_name):
            arrays = holdout(bunch.data, bunch.target, self.test_fraction, self.seed)
        data = finish(self, arrays, num_classes=None)
        x_train = cast(Tensor, data.x_train)  # one tensor, as `finish` builds it
        data = rescaled(data, x_train.mean(dim=0), x_train.std(dim=0, correction=0))
        return standardized_targets(data) if self.standardize_target else data

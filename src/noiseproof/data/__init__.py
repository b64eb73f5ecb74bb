"""Datasets: generated, bundled and file-based loaders, registered by name, and `load_dataset`."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from noiseproof.data.base import IGNORE_INDEX, Dataset, DatasetSpec, datasets
from noiseproof.data.vocabulary import check_vocabulary
from noiseproof.registry import import_modules

import_modules(__name__, __path__)  # every module registers its datasets

__all__ = ["IGNORE_INDEX", "Dataset", "DatasetSpec", "check_vocabulary", "datasets", "load_dataset"]


def load_dataset(spec: str | Mapping[str, Any] | DatasetSpec) -> Dataset:
    """The Dataset for `spec`: a name, a {'name': ..., **params} mapping, or a DatasetSpec.

    >>> import noiseproof as nf
    >>> data = nf.load_dataset("digits")  # scikit-learn's 8x8 digits, installed offline
    >>> data.input_shape, data.num_outputs, len(data.x_train), len(data.x_test)
    ((1, 8, 8), 10, 1294, 359)
    """
    return datasets.create(spec).load()

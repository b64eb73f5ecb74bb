"""Datasets: generated, bundled and file-based loaders, registered by name, and `load_dataset`."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from noiseproof.data import builtin, imagefolder, sequences  # noqa: F401  (registers the datasets)
from noiseproof.data.base import Dataset, DatasetSpec, datasets

__all__ = ["Dataset", "DatasetSpec", "datasets", "load_dataset"]


def load_dataset(spec: str | Mapping[str, Any] | DatasetSpec) -> Dataset:
    """The Dataset for `spec`: a name, a {'name': ..., **params} mapping, or a DatasetSpec."""
    return datasets.create(spec).load()

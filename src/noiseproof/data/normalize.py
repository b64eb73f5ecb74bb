"""Per-channel standardisation x' = (x - mean_c) / std_c: named presets, given values, or the
training split's own statistics (the `normalize` key of every image dataset)."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import torch
from torch import Tensor

# Channel statistics of the training images in [0, 1] (population std over all pixels).
PRESETS: dict[str, tuple[tuple[float, ...], tuple[float, ...]]] = {
    "cifar10": ((0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616)),
    "cifar100": ((0.5071, 0.4865, 0.4409), (0.2673, 0.2564, 0.2762)),
    "imagenet": ((0.485, 0.456, 0.406), (0.229, 0.224, 0.225)),  # torchvision's ImageNet values
    "mnist": ((0.1307,), (0.3081,)),
    "fashion-mnist": ((0.2860,), (0.3530,)),
}

NORMALIZE_HELP = (
    "per-channel (x - mean) / std on every split: true (the training split's statistics), "
    f"false, a preset ({', '.join(PRESETS)}) or {{mean: [...], std: [...]}}"
)


def check_normalize(value: Any) -> bool | str | dict[str, tuple[float, ...]]:
    """The `normalize` setting if valid (ValueError in one line otherwise): a bool, a preset
    name, or {mean: [...], std: [...]} with equally many finite means and positive stds."""
    if isinstance(value, bool):
        return value
    if isinstance(value, str):
        if value not in PRESETS:
            raise ValueError(
                f"unknown preset '{value}' (known: {', '.join(PRESETS)}; "
                "or true, false, {mean: [...], std: [...]})"
            )
        return value
    if isinstance(value, Mapping):
        if set(value) != {"mean", "std"}:
            raise ValueError(f"needs exactly the keys mean and std, got {sorted(value)}")
        mean, std = (numbers(value[key], key) for key in ("mean", "std"))
        if len(mean) != len(std):
            raise ValueError(f"{len(mean)} means but {len(std)} stds")
        if not all(s > 0 for s in std):
            raise ValueError(f"every std must be > 0, got {list(std)}")
        return {"mean": mean, "std": std}
    raise ValueError(f"must be true, false, a preset name or {{mean, std}}, got {value!r}")


def numbers(values: Any, key: str) -> tuple[float, ...]:
    """`values` as a non-empty tuple of finite floats (ValueError naming `key` otherwise)."""
    if isinstance(values, int | float) and not isinstance(values, bool):
        values = [values]
    if (
        not isinstance(values, Sequence)
        or isinstance(values, str)
        or not values
        or not all(isinstance(v, int | float) and not isinstance(v, bool) for v in values)
        or not all(math.isfinite(v) for v in values)
    ):
        raise ValueError(f"{key} must be a non-empty list of finite numbers")
    return tuple(float(v) for v in values)


def channel_stats(setting: Any, x_train: Tensor | None) -> tuple[Tensor, Tensor] | None:
    """(mean, std) as float32 [C] for a checked `normalize` setting; None for false. `true`
    computes them over every dimension but 1 of `x_train` (None: refused, the split is not in
    memory); a zero std counts as 1."""
    if setting is False:
        return None
    if setting is True:
        if x_train is None:
            raise ValueError(
                "normalize: true (the training split's statistics) needs the training split in "
                "memory: give a preset (e.g. imagenet) or {mean: [...], std: [...]}"
            )
        dims = [d for d in range(x_train.dim()) if d != 1]
        mean, std = x_train.mean(dim=dims), x_train.std(dim=dims)
        return mean, torch.where(std > 0, std, torch.ones_like(std))
    given = PRESETS[setting] if isinstance(setting, str) else (setting["mean"], setting["std"])
    return torch.tensor(given[0], dtype=torch.float32), torch.tensor(given[1], dtype=torch.float32)


def standardize(x: Tensor, mean: Tensor, std: Tensor) -> Tensor:
    """(x - mean) / std, mean and std [C] broadcast over dimension 1 of x [N, C, ...]."""
    if x.dim() < 2 or x.shape[1] != len(mean):
        raise ValueError(
            f"normalize gives {len(mean)} channel(s) but the inputs have shape "
            f"{tuple(x.shape)} (channels on dimension 1 of [N, C, ...])"
        )
    shape = (-1,) + (1,) * (x.dim() - 2)
    return (x - mean.to(x.device).view(shape)) / std.to(x.device).view(shape)

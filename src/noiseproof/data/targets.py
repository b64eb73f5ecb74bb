"""What a Dataset split's targets y may be, checked once when the Dataset is built.

Three kinds, told apart by dtype and shape:

- classes: integer [N], class indices in [0, num_classes);
- tokens: integer [N, T], each in [0, num_classes) or IGNORE_INDEX (a position without a
  target, skipped by the loss as torch.nn.functional.cross_entropy's ignore_index skips it);
- regression: floating [N] or [N, D], every value finite, num_classes None.

Integer targets are stored as int64, floating ones as float32.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch import Tensor

IGNORE_INDEX = -100  # torch.nn.functional.cross_entropy's default ignore_index
MAX_CLASSES = 1_000_000  # a larger inferred class count is taken for a corrupt label

KIND_NAMES = {
    "classes": "class indices [N]",
    "tokens": "token targets [N, T]",
    "regression": "regression targets",
}

TARGETS_HELP = (
    "class indices [N] (integer), token targets [N, T] (integer) or regression targets "
    "[N] / [N, D] (floating point)"
)


def target_kind(y: Tensor) -> str:
    """'regression' for floating-point y, 'tokens' for integer [N, T], 'classes' for integer
    [N] (bool counts as integer)."""
    if y.is_floating_point():
        return "regression"
    return "tokens" if y.dim() == 2 else "classes"


def check_targets(y: Any, name: str, num_classes: int | None) -> Tensor:
    """`y` as stored (int64 or float32) when it is one of the three kinds of targets (see the
    module docstring) and agrees with `num_classes`; else a one-line TypeError/ValueError
    naming `name`."""
    if not isinstance(y, Tensor) or y.is_complex():
        raise TypeError(f"{name} must be a tensor of targets: {TARGETS_HELP}")
    if y.dim() not in (1, 2):
        raise TypeError(f"{name} must hold {TARGETS_HELP}, got shape {tuple(y.shape)}")
    if y.dim() == 2 and y.shape[1] == 0:
        raise ValueError(f"{name} has no target per example (shape {tuple(y.shape)})")
    if y.is_floating_point():
        if num_classes is not None:
            raise TypeError(
                f"{name}: float targets are regression targets: num_classes must be None "
                f"(got {num_classes})"
            )
        y = y.to(torch.float32)
        if y.numel() and not _finite(y):
            raise ValueError(f"{name} holds NaN or infinite values (as float32)")
        return y
    if num_classes is None:
        raise TypeError(
            f"{name} holds integer targets (class indices): num_classes must be an int >= 2, "
            "got None (floating-point targets are regression targets)"
        )
    y = y.long()
    if y.numel():
        low, high = (int(v) for v in torch.aminmax(y))
        if high >= num_classes or (low < 0 and (y.dim() == 1 or not _ignored(y))):
            extra = f" (or the ignore index {IGNORE_INDEX})" if y.dim() == 2 else ""
            raise ValueError(f"{name} holds labels outside [0, {num_classes}){extra}")
    return y


def check_agreement(y: Any, name: str, reference: Tensor) -> None:
    """Refuse (one line naming `name`) targets of another kind or per-example shape than the
    training split's `reference`; anything that is no targets at all is left to
    `check_targets`."""
    if not isinstance(y, Tensor) or y.dim() not in (1, 2) or y.is_complex():
        return
    kind, expected = target_kind(y), target_kind(reference)
    if kind != expected:
        raise TypeError(f"{name} holds {KIND_NAMES[kind]} but y_train holds {KIND_NAMES[expected]}")
    if y.shape[1:] != reference.shape[1:]:
        raise ValueError(
            f"{name} has targets of shape {tuple(y.shape[1:])} per example, "
            f"y_train {tuple(reference.shape[1:])}"
        )


def empty_like_targets(y: Tensor, reference: Tensor) -> Tensor:
    """An empty split's targets (e.g. no validation examples) in `reference`'s dtype and
    per-example shape, on `y`'s device, so every split agrees."""
    return torch.empty((0, *reference.shape[1:]), dtype=reference.dtype, device=y.device)


def regression_outputs(y: Tensor) -> int:
    """The model outputs regression targets need: 1 for [N], D for [N, D]."""
    return 1 if y.dim() == 1 else int(y.shape[1])


def inferred_classes(ys: Sequence[tuple[str, Tensor]]) -> int | None:
    """num_classes implied by integer targets: max(label) + 1 over every split's labels other
    than IGNORE_INDEX, at least 2; None for floating-point (regression) targets. An implied
    count over MAX_CLASSES is refused in one line (a corrupt label, e.g. 2**31 - 1)."""
    tensors = [(name, y) for name, y in ys if isinstance(y, Tensor) and y.numel()]
    if not tensors or tensors[0][1].is_floating_point():
        return None
    found, where = 1, tensors[0][0]
    for name, y in tensors:
        if y.is_floating_point() or y.is_complex():
            continue  # refused by the Dataset's own checks
        kept = y[y != IGNORE_INDEX] if y.dim() == 2 else y
        if kept.numel() and int(kept.max()) + 1 > found:
            found, where = int(kept.max()) + 1, name
    if found > MAX_CLASSES:
        raise ValueError(
            f"{where} holds label {found - 1}: more than {MAX_CLASSES:,} classes is refused as "
            "a likely corrupt label; give num_classes explicitly to allow it"
        )
    return max(2, found)


def _ignored(y: Tensor) -> bool:
    """Whether every negative entry of token targets is IGNORE_INDEX."""
    negative = y[y < 0]
    return bool((negative == IGNORE_INDEX).all())


def _finite(y: Tensor) -> bool:
    """True when no element is NaN or infinite (min and max are finite; NaN propagates)."""
    low, high = torch.aminmax(y)
    return bool(torch.isfinite(low) & torch.isfinite(high))

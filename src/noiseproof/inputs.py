"""Model inputs of any shape a PyTorch user writes: one tensor, a tuple or a dict of tensors.

A batch of inputs is a tensor [B, ...], a tuple of such tensors (passed to `forward` as
positional arguments) or a dict of them (passed as keyword arguments), every tensor with the
same first dimension B. These helpers index, split and pass such batches without caring which.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from typing import Any, Union, cast

import torch
from torch import Tensor

Inputs = Union[Tensor, tuple[Tensor, ...], dict[str, Tensor]]  # noqa: UP007 (runtime alias)


def leaves(x: Inputs) -> list[Tensor]:
    """The tensors of `x` in order (a dict in its key order)."""
    if isinstance(x, Tensor):
        return [x]
    return list(x.values()) if isinstance(x, Mapping) else list(x)


def rebuild(x: Inputs, tensors: Sequence[Tensor]) -> Inputs:
    """`x`'s structure holding `tensors` instead of its own."""
    if isinstance(x, Tensor):
        return tensors[0]
    if isinstance(x, Mapping):
        return dict(zip(x.keys(), tensors, strict=True))
    return tuple(tensors)


def count(x: Inputs) -> int:
    """Number of examples B."""
    return len(leaves(x)[0])


def take(x: Inputs, index: Tensor | slice) -> Inputs:
    """The examples at `index` (an index tensor or a slice) of every tensor."""
    return rebuild(x, [t[index] for t in leaves(x)])


def split(x: Inputs, size: int) -> Iterator[Inputs]:
    """Consecutive chunks of at most `size` examples."""
    for start in range(0, count(x), size):
        yield take(x, slice(start, start + size))


def call_arguments(x: Inputs) -> tuple[tuple[Tensor, ...], dict[str, Tensor]]:
    """(args, kwargs) for `forward`: a tensor is one argument, a tuple several, a dict keywords."""
    if isinstance(x, Tensor):
        return (x,), {}
    if isinstance(x, Mapping):
        return (), dict(x)
    return tuple(x), {}


def shapes(x: Inputs) -> Any:
    """Per-example shape: a tuple of ints for one tensor, else a tuple/dict of such tuples."""
    per_example: list[Any] = [tuple(t.shape[1:]) for t in leaves(x)]
    return per_example[0] if isinstance(x, Tensor) else rebuild(x, per_example)


def zeros(shape: Any, device: torch.device | str | None = None) -> Inputs:
    """A batch of one all-zero example of per-example `shape` (as `shapes` gives it, or as
    JSON gives it back: lists for tuples): a tensor, a tuple or a dict of tensors, made on
    `device` (None: the CPU)."""
    if isinstance(shape, Mapping):
        return {key: torch.zeros(1, *part, device=device) for key, part in shape.items()}
    if all(isinstance(d, int) for d in shape):
        return torch.zeros(1, *shape, device=device)
    return tuple(torch.zeros(1, *part, device=device) for part in shape)


def to(x: Inputs, device: torch.device | str) -> Inputs:
    """`x` with every tensor on `device`."""
    return rebuild(x, [t.to(device) for t in leaves(x)])


def check_inputs(x: Any, name: str) -> Inputs:
    """`x` if it is a valid batch of inputs (TypeError/ValueError naming `name` otherwise):
    a tensor, or a non-empty tuple/list/dict of tensors sharing their first dimension, every
    floating-point value finite. A list is returned as a tuple."""
    if isinstance(x, list):
        x = tuple(x)
    if isinstance(x, Tensor):
        tensors = [x]
    elif isinstance(x, tuple | Mapping) and len(x) > 0:
        if isinstance(x, Mapping) and not all(isinstance(k, str) for k in x):
            raise TypeError(
                f"{name}: a dict of inputs needs string keys (forward's argument names)"
            )
        tensors = leaves(cast(Inputs, x))  # its elements are checked to be tensors below
    else:
        raise TypeError(
            f"{name} must be a tensor or a tuple/dict of tensors, got {type(x).__name__}"
        )
    for tensor in tensors:
        if not isinstance(tensor, Tensor):
            raise TypeError(f"{name} holds a {type(tensor).__name__}, expected tensors only")
        if tensor.dim() == 0:
            raise ValueError(f"{name}: a tensor of inputs needs a batch dimension, got a scalar")
        if len(tensor) != len(tensors[0]):
            raise ValueError(
                f"{name}: its tensors disagree on the number of examples "
                f"({len(tensors[0])} vs {len(tensor)})"
            )
        if tensor.is_floating_point() and tensor.numel() and not _finite(tensor):
            raise ValueError(f"{name} holds NaN or infinite values")
    return x


def _finite(tensor: Tensor) -> bool:
    """True when no element is NaN or infinite: min and max are finite (NaN propagates into
    both; one reduction pass, ten times cheaper than an elementwise isfinite)."""
    low, high = torch.aminmax(tensor)
    return bool(torch.isfinite(low) & torch.isfinite(high))

"""Physical ranges of neuron parameters: perturbed values stay what a chip can hold.

Mismatch (e.g. theta' = theta (1 + zeta N(0, 1)), Buechel et al. 2022) can push a decay factor
out of [0, 1] or a threshold below zero, values no circuit realises. Every perturbed on-chip
tensor whose leaf name (the part after the last '.') names a neuron parameter is clamped into
its range; every other tensor (weights, biases, BatchNorm statistics...) is returned as the
very same tensor object, untouched, so weight draws are bit-identical with or without this
module. The ranges, by leaf name:

- decay factors, in [0, 1]: `beta`, `alpha` (snntorch's membrane and synaptic decays),
  `decay`, `decay_*`, `*_decay`;
- strictly positive quantities, clamped to [POSITIVE_FLOOR, inf): `threshold`, `threshold_*`,
  `tau`, `tau_*` (time constants, e.g. the built-in models' `tau_mem`, `tau_adapt`, `tau_out`);
- non-negative quantities, in [0, inf): `adaptation`, `adaptation_*` (threshold adaptation
  strength, Bellec et al. 2018).

A custom neuron whose parameters have other names declares them once, e.g.
`noiseproof.physical.declare("v_th", low=POSITIVE_FLOOR)` next to its class. Clamping is
`torch.clamp` (values beyond a bound become the bound; its gradient is 0 there), applied to
every noise draw (`NoiseModel.sample` and `sample_with_faults` of every built-in and plugin
noise model: noiseproof.noise.base) and to every point of the relative attack box
(noiseproof.bounds: the targeted attack and adversarial training).
"""

from __future__ import annotations

import fnmatch
import functools
from collections.abc import Mapping
from typing import NamedTuple

import torch
from torch import Tensor

POSITIVE_FLOOR = 1e-6
"""Lower bound of a strictly positive quantity (a threshold, a time constant), in the tensor's
own units: a perturbed threshold or time constant is never <= 0."""


class Range(NamedTuple):
    """Closed interval [low, high]; None is unbounded on that side."""

    low: float | None
    high: float | None


DECAY = Range(0.0, 1.0)
POSITIVE = Range(POSITIVE_FLOOR, None)
NON_NEGATIVE = Range(0.0, None)

_CONVENTIONS: dict[str, Range] = {
    "beta": DECAY,
    "alpha": DECAY,
    "decay": DECAY,
    "decay_*": DECAY,
    "*_decay": DECAY,
    "threshold": POSITIVE,
    "threshold_*": POSITIVE,
    "tau": POSITIVE,
    "tau_*": POSITIVE,
    "adaptation": NON_NEGATIVE,
    "adaptation_*": NON_NEGATIVE,
}
"""Leaf-name patterns (fnmatch) -> range; the first match wins. `declare` adds exact names."""

_DECLARED: dict[str, Range] = {}

_UNBOUNDED = ("weight", "weight_*", "bias", "bias_*")
"""Leaf names that stay unbounded whatever is declared: weights and biases."""


def declare(leaf: str, low: float | None = None, high: float | None = None) -> None:
    """Give the tensors named `leaf` (any module's, e.g. 'v_th') the range [low, high].

    For a custom neuron's parameters that the naming conventions do not cover; declaring a
    name twice with the same range is a no-op, with another range a ValueError.
    """
    if not isinstance(leaf, str) or not leaf or "." in leaf:
        raise ValueError(f"leaf must be a tensor's own name without dots, got {leaf!r}")
    if any(fnmatch.fnmatchcase(leaf, p) for p in _UNBOUNDED):
        raise ValueError(f"leaf {leaf!r} is a weight or bias name: weights stay unbounded")
    if low is None and high is None:
        raise ValueError(f"declare({leaf!r}) needs low or high")
    if low is not None and high is not None and not low <= high:
        raise ValueError(f"low must be <= high, got low={low}, high={high}")
    wanted = Range(low, high)
    if _DECLARED.get(leaf, wanted) != wanted:
        raise ValueError(f"{leaf!r} is already declared with range {tuple(_DECLARED[leaf])}")
    _DECLARED[leaf] = wanted
    range_of.cache_clear()


@functools.lru_cache(maxsize=4096)
def range_of(name: str) -> Range | None:
    """The physical range of the tensor called `name` (a full name, e.g. 'lif1.beta'), by its
    leaf name: a declaration first, then the conventions; None for an unbounded tensor."""
    leaf = name.rsplit(".", 1)[-1]
    if leaf in _DECLARED:
        return _DECLARED[leaf]
    if any(fnmatch.fnmatchcase(leaf, p) for p in _UNBOUNDED):
        return None
    return next((r for p, r in _CONVENTIONS.items() if fnmatch.fnmatchcase(leaf, p)), None)


def limit(name: str, tensor: Tensor) -> Tensor:
    """`tensor` clamped into the range of `name`; the same object when `name` has none."""
    bounds = range_of(name)
    if bounds is None:
        return tensor
    return torch.clamp(tensor, min=bounds.low, max=bounds.high)


def limit_all(params: Mapping[str, Tensor]) -> dict[str, Tensor]:
    """A new dict: every tensor of `params` passed through `limit` (weights untouched)."""
    return {name: limit(name, tensor) for name, tensor in params.items()}

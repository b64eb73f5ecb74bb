"""Many chips in one forward: `torch.func.vmap` over stacked parameters, where it pays.

A forward of a small model on a small test set costs mostly per-op overhead (Python, dispatch,
kernel launches), not arithmetic: stacking the parameters of C chips and running one vmapped
`functional_call` pays that overhead once for C chips. For a large model or a large test set
the arithmetic dominates and a plain loop over chips is already at its floor (K clean passes).
Whether vmap pays is read off one census of the clean forward (floating-point operations per
module call, by global forward hooks: a dispatch mode would import torch._dynamo, seconds);
whether vmap runs the model correctly is checked once per run against the plain forward, and
any model it cannot run takes the loop.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import cast

import torch
from torch import Tensor, nn
from torch.nn.modules.module import register_module_forward_hook

from noiseproof.chip import forward
from noiseproof.inputs import Inputs, count, split, take
from noiseproof.tasks import Task

FLOPS_PER_CALL = {"cpu": 1e6, "cuda": 5e7, "mps": 5e7}
"""Below this many floating-point operations per module call of one clean forward over the test
set, per-call overhead dominates and vmap pays (CPU: ~10-20 us of Python and dispatch per
module call at ~50 GFLOP/s; a GPU has a similar overhead per call, kernel launches included,
and a thousandfold throughput)."""

PROBE_EXAMPLES = 8
"""Examples of the census and agreement probe forwards."""


@dataclass(frozen=True)
class Census:
    """What one clean forward costs per example (FLOPs, bytes of module outputs) and its
    number of leaf-module calls."""

    flops_per_example: float
    bytes_per_example: float
    calls: int


def _flops(module: nn.Module, out: Tensor) -> int:
    """FLOPs of one leaf-module call: 2 x fan-in x outputs for a layer with a weight matrix or
    kernel (Linear, ConvNd: a multiply and an add per weight use), else one per output."""
    weight = getattr(module, "weight", None)
    if isinstance(weight, Tensor) and weight.dim() >= 2:
        return 2 * (weight.numel() // weight.shape[0]) * out.numel()
    return out.numel()


@torch.no_grad()
def census(model: nn.Module, params: Mapping[str, Tensor], x: Inputs) -> Census:
    """FLOPs and output bytes per example, and leaf-module calls, of one forward of `model`
    through `params` on the first PROBE_EXAMPLES examples of `x` (global forward hooks, removed
    after: the model is left as it was)."""
    probe = take(x, slice(0, PROBE_EXAMPLES))
    totals = {"flops": 0, "bytes": 0, "calls": 0}

    def hook(module: nn.Module, _args: object, out: object) -> None:
        if next(module.children(), None) is None:  # leaf modules only: no double counting
            for t in out if isinstance(out, tuple | list) else (out,):
                if isinstance(t, Tensor):
                    totals["flops"] += _flops(module, t)
                    totals["bytes"] += t.numel() * t.element_size()
            totals["calls"] += 1

    handle = register_module_forward_hook(hook)
    try:
        forward(model, params, probe)
    finally:
        handle.remove()
    n = count(probe)
    return Census(totals["flops"] / n, totals["bytes"] / n, totals["calls"])


def pays(cost: Census, examples: int, device: torch.device) -> bool:
    """Whether vmap pays for `examples` test examples on `device`: FLOPs per module call of one
    clean pass over them below FLOPS_PER_CALL (per-call overhead dominates). Depends on the
    model, the test set size and the device only, never on the chunk or batch size."""
    per_call = cost.flops_per_example * examples / max(cost.calls, 1)
    return per_call < FLOPS_PER_CALL.get(device.type, FLOPS_PER_CALL["cuda"])


def stacked_logits(model: nn.Module, chips: Mapping[str, Tensor], x: Inputs) -> Tensor:
    """Logits [C, B, ...] of C chips (`chips`: {name: [C, ...]}) on inputs `x` of B examples,
    one vmapped functional_call. Random ops inside the forward are an error (eval mode draws
    nothing; a model that does is evaluated by the loop)."""
    run = torch.func.vmap(lambda p: forward(model, p, x), randomness="error")
    return run(dict(chips))


def outcomes(
    outputs_of: Callable[[Inputs], Tensor],
    x: Inputs,
    y: Tensor,
    batch_size: int,
    task: Task,
    chips: int = 0,
) -> tuple[Tensor, Tensor]:
    """The task's sums ([*chips, S]) and hits per unit ([*chips, N, ...]) over (x, y), one
    `outputs_of(batch)` per batch of `batch_size`: a plain forward of one chip (chips 0), or a
    vmapped forward of stacked chips whose outputs lead with the chip dimension (chips 1)."""
    sums: Tensor | None = None
    hits = []
    for xs, batch in zip(split(x, batch_size), split(y, batch_size), strict=True):
        ys = cast(Tensor, batch)  # a chunk of the tensor y
        outputs = outputs_of(xs)
        part = task.sums(outputs, ys)
        sums = part if sums is None else sums + part
        hits.append(task.hits(outputs, ys))
    assert sums is not None  # at least one batch: x holds examples
    return sums, torch.cat(hits, dim=chips)


@torch.no_grad()
def stacked_outcomes(
    model: nn.Module,
    chips: Mapping[str, Tensor],
    x: Inputs,
    y: Tensor,
    batch_size: int,
    task: Task,
) -> tuple[Tensor, Tensor]:
    """The task sums [C, S] and hits [C, N, ...] of C stacked chips on (x, y), in batches."""
    return outcomes(lambda xs: stacked_logits(model, chips, xs), x, y, batch_size, task, chips=1)


def _tolerance(logits: Tensor) -> float:
    """Agreement bound of the probe: half the digits of the logits' dtype (sqrt(eps), relative
    to their magnitude); another summation order differs by a few ulps, a wrong model by O(1)."""
    return math.sqrt(torch.finfo(logits.dtype).eps) * (1.0 + float(logits.abs().max()))


@torch.no_grad()
def vmap_agrees(model: nn.Module, clean: Mapping[str, Tensor], x: Inputs) -> bool:
    """Whether the vmapped forward gives, on a few examples, the plain forward's logits for two
    different chips (the clean one and a scaled copy): False when vmap raises, falls back to
    its slow per-sample loop (a 'performance drop' warning) or disagrees (a model vmap runs
    wrongly). Checked once per run, so the loop/vmap choice is never silently wrong."""
    probe = take(x, slice(0, PROBE_EXAMPLES))
    chips = [dict(clean), {n: 0.75 * t for n, t in clean.items()}]
    stacked = {n: torch.stack([chip[n] for chip in chips]) for n in clean}
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            together = stacked_logits(model, stacked, probe)
    except Exception:  # whatever vmap cannot run goes to the loop, which raises real errors
        return False
    if any("performance drop" in str(w.message) for w in caught):
        return False
    for i, chip in enumerate(chips):
        alone = forward(model, chip, probe)
        if together[i].shape != alone.shape or not bool(torch.isfinite(alone).all()):
            return False
        if float((together[i].float() - alone.float()).abs().max()) > _tolerance(alone):
            return False
    return True


def auto_chunk(cost: Census, chip_bytes: int, examples: int, transfers: int, budget: int) -> int:
    """Chips per vmapped forward: as many as fit in `budget` bytes (twice the stacked chip
    tensors, and twice the module outputs of one batch of `examples` per chip, for the
    functional ops between modules), at least 1, at most `transfers`."""
    per_chip = 2 * chip_bytes + 2 * cost.bytes_per_example * examples
    return max(1, min(transfers, math.floor(budget / max(per_chip, 1))))

"""Argument checks shared by the evaluation functions of the Python API (one clear error each)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
from torch import Tensor, nn

from noiseproof.chip import forward
from noiseproof.evaluation.vectorised import PROBE_EXAMPLES
from noiseproof.inputs import Inputs, check_inputs, count, leaves, take
from noiseproof.modes import evaluating
from noiseproof.seeding import global_rng
from noiseproof.tasks import Task, create_task


def check_evaluation_arguments(
    model: Any, x: Any, y: Any, x_name: str, y_name: str, task: Any = None
) -> Task:
    """The task of the evaluation (`task`: a Task, a name or mapping, or None/'auto' to infer
    it from `y`: noiseproof.tasks.create_task); TypeError/ValueError naming the argument unless
    `model` is an nn.Module, `x` a batch of inputs (noiseproof.inputs.check_inputs) and `y`
    targets of the same length that the task reads."""
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    check_inputs(x, x_name)
    if not isinstance(y, Tensor):
        raise TypeError(f"{y_name} must be a tensor of targets, got {type(y).__name__}")
    task = create_task(task, y=y, x=x, announce=False) if not isinstance(task, Task) else task
    task.check_targets(y, y_name)
    if len(y) != count(x):
        raise ValueError(f"{x_name} and {y_name} differ in length ({count(x)} vs {len(y)})")
    if not len(y):
        raise ValueError(f"{x_name} holds no examples")
    return task


@torch.no_grad()
def check_outputs_fit(
    model: nn.Module,
    params: Mapping[str, Tensor] | None,
    x: Inputs,
    y: Tensor,
    task: Task,
    x_name: str = "x",
    y_name: str = "y",
) -> Tensor:
    """The outputs of one forward on the first examples of `x` (in eval mode), after a
    ValueError/TypeError naming the argument when they do not fit the task's targets `y`
    (shape, ids beyond the outputs) or the model cannot read `x` (token ids beyond its
    embedding, a feature size or dtype its layers refuse, inputs its forward does not take),
    instead of a deep torch error. The probe runs in a fork of the global random state
    (noiseproof.seeding.global_rng): a model drawing in its forward moves nobody's stream."""
    probe = take(x, slice(0, PROBE_EXAMPLES))
    try:
        with evaluating(model), global_rng(0, "probe", device=leaves(probe)[0].device):
            outputs = forward(model, params, probe)
    except IndexError as error:
        ints = [t for t in leaves(x) if not t.is_floating_point()]
        largest = f" (largest id {max(int(t.max()) for t in ints)})" if ints else ""
        raise ValueError(
            f"{x_name}: the model cannot read these inputs{largest}: "
            f"{first_line(error)} (token ids beyond its vocabulary?)"
        ) from None
    except torch.OutOfMemoryError:
        raise
    except (RuntimeError, TypeError) as error:  # a shape, dtype or signature the model refuses
        kind = ValueError if isinstance(error, RuntimeError) else TypeError
        raise kind(
            f"{x_name}: the model cannot run on inputs {described(probe)} (its first "
            f"{count(probe)} examples): {first_line(error)}"
        ) from error
    task.check_outputs(outputs, y, y_name)
    return outputs


def described(x: Inputs) -> str:
    """The shapes and dtypes of a batch of inputs, for an error message: '[8, 5] float32', or
    a tuple '([8, 5] float32, [8] int64)' or dict "{'ids': [8, 16] int64}" of them."""
    parts = [f"{list(t.shape)} {str(t.dtype).removeprefix('torch.')}" for t in leaves(x)]
    if isinstance(x, Tensor):
        return parts[0]
    if isinstance(x, Mapping):
        return "{" + ", ".join(f"{k!r}: {p}" for k, p in zip(x, parts, strict=True)) + "}"
    return "(" + ", ".join(parts) + ")"


def first_line(error: BaseException) -> str:
    """The first non-empty line of an exception's message (torch's can run to many lines)."""
    lines = [line.strip() for line in str(error).splitlines() if line.strip()]
    return lines[0] if lines else type(error).__name__


def check_generator(generator: Any) -> torch.Generator:
    """`generator` if it is a torch.Generator: every draw takes an explicit one (no global RNG)."""
    if not isinstance(generator, torch.Generator):
        raise TypeError(
            "generator must be a torch.Generator (e.g. torch.Generator().manual_seed(0)), "
            f"got {type(generator).__name__}: draws never come from the global random state"
        )
    return generator


def check_count(value: Any, name: str, minimum: int = 1) -> int:
    """`value` if it is an int >= minimum (bools refused)."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{name} must be an int, got {value!r}")
    if value < minimum:
        raise ValueError(f"{name} must be >= {minimum}, got {value}")
    return value

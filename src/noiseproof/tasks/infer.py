"""The task of a run: given by name or mapping, or inferred from the targets (`auto`)."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from torch import Tensor

from noiseproof.inputs import Inputs
from noiseproof.tasks.base import Task, tasks

log = logging.getLogger(__name__)

AUTO = "auto"
"""The task spec that infers the task from the targets (and the inputs)."""


def infer_task(y: Tensor, x: Inputs | None = None) -> tuple[str, str]:
    """(task name, why) from targets `y` (and inputs `x`): floating-point targets are
    regression, 1-d integer targets classification, 2-d integer targets a language model when
    they are the inputs shifted by one token (x[:, 1:] == y[:, :-1] on the first examples),
    else token classification. TypeError naming `y` for anything else."""
    if not isinstance(y, Tensor) or y.is_complex():
        raise TypeError(f"y must be a tensor of targets, got {type(y).__name__}")
    if y.is_floating_point():
        return "regression", f"floating-point targets {list(y.shape[1:]) or 'per example'}"
    if y.dim() == 1:
        return "classification", "1-d integer targets (class indices)"
    if y.dim() == 2:
        head = slice(0, 64)
        shifted = (
            isinstance(x, Tensor)
            and x.shape == y.shape
            and not x.is_floating_point()
            and bool((x[head, 1:] == y[head, :-1]).all())
        )
        if shifted:
            return "language_model", "[N, T] integer targets that are the inputs shifted by one"
        return "token_classification", "[N, T] integer targets (a label per token)"
    raise TypeError(
        f"y must hold class indices [N], token targets [N, T] or real targets [N] / [N, D], "
        f"got a {y.dtype} tensor of shape {list(y.shape)}"
    )


def create_task(
    spec: str | Mapping[str, Any] | Task | None = AUTO,
    *,
    y: Tensor | None = None,
    x: Inputs | None = None,
    announce: bool = True,
) -> Task:
    """A task from a name ('classification', 'regression', 'token_classification',
    'language_model', a plugin's), a {'name': ..., **settings} mapping, a Task, or 'auto'/None:
    inferred from the targets `y` (and inputs `x`, see `infer_task`), the inferred task logged
    in one line (announce=False: not logged). A given task checks that `y` fits it.

    >>> import torch, noiseproof as nf
    >>> nf.create_task(y=torch.tensor([0, 2, 1]), announce=False).spec()
    {'name': 'classification'}
    >>> nf.create_task(y=torch.tensor([0.5, -1.2]), announce=False).spec()["name"]
    'regression'
    """
    if spec is None or spec == AUTO:
        if y is None:
            raise ValueError("task 'auto' needs the targets y to infer the task from")
        name, why = infer_task(y, x)
        task = tasks.create(name)
        if announce:
            log.info(f"task: {name} (inferred from {why}; set 'task' to change it)")
    else:
        task = tasks.create(spec)
        if not isinstance(task, Task):
            raise TypeError(f"task must be a Task or a task spec, got {type(task).__name__}")
    if y is not None:
        task.check_targets(y, "y")
    return task

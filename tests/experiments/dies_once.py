"""A test plugin (`--plugin dies_once`, this folder on PYTHONPATH) whose components kill their own
process with SIGKILL once, in the middle of a job: a Ray worker dying as an out-of-memory kill
or a lost node would end it.

- method `dies_once` trains as `standard`; at its 3rd training step in a process it may die;
- noise model `relative_gaussian_dies_once` draws as `relative_gaussian`; at its 3rd tensor
  drawn in a process it may die.

They die only where the environment variable NOISEPROOF_TEST_DIE_IN names a folder, and only
the first process to get there: it creates `<folder>/train` (or `evaluate`) holding its pid,
then kills itself; every later process finds the file and goes on. Without the variable they
are `standard` and `relative_gaussian` exactly, so a local run of the same grid is the
reference a run with deaths must equal.
"""

from __future__ import annotations

import os
import signal
from collections import Counter

import torch
from torch import Tensor

from noiseproof.methods.base import StepContext, methods
from noiseproof.methods.standard import Standard
from noiseproof.noise.base import noise_models
from noiseproof.noise.gaussian import RelativeGaussian

FOLDER = "NOISEPROOF_TEST_DIE_IN"
"""The environment variable naming the folder of the markers (unset: never die)."""
AT_CALL = 3
"""The call (in a process) at which a component may die."""

_calls: Counter[str] = Counter()


def maybe_die(point: str) -> None:
    """Count a call of `point`; at the AT_CALL-th, SIGKILL this process unless some process
    already did so for `point` (the marker file exists) or no marker folder is set."""
    _calls[point] += 1
    folder = os.environ.get(FOLDER)
    if not folder or _calls[point] != AT_CALL:
        return
    try:
        fd = os.open(os.path.join(folder, point), os.O_CREAT | os.O_EXCL | os.O_WRONLY)
    except FileExistsError:
        return
    os.write(fd, str(os.getpid()).encode())
    os.close(fd)
    os.kill(os.getpid(), signal.SIGKILL)


@methods.register("dies_once")
class DiesOnce(Standard):
    """`standard` that may kill its process once at its 3rd training step (module docstring)."""

    def terms(self, ctx: StepContext, x: Tensor, y: Tensor) -> dict[str, Tensor]:
        """`standard`'s terms, after `maybe_die('train')`."""
        maybe_die("train")
        return super().terms(ctx, x, y)


@noise_models.register("relative_gaussian_dies_once")
class RelativeGaussianDiesOnce(RelativeGaussian):
    """`relative_gaussian` that may kill its process once at its 3rd tensor drawn."""

    def perturb(self, name: str, tensor: Tensor, generator: torch.Generator) -> Tensor:
        """`relative_gaussian`'s draw, after `maybe_die('evaluate')`."""
        maybe_die("evaluate")
        return super().perturb(name, tensor, generator)

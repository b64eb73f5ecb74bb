"""The task interface: what a network is trained and measured for.

A task owns the loss, the prediction, the per-chip metrics and what "reliable" means; no other
module computes a loss or an argmax for the task. Every function takes outputs with optional
leading chip dimensions ([*chips, B, ...]: one chip, or C chips of a vmapped forward) and
targets without them ([B, ...]), so the Monte Carlo engine measures C chips in one call.

Per chip, a batch reduces to a fixed-size vector of float64 sums (`sums`), added over the
batches of the test set; the chip's metrics are functions of its summed vector (`metrics`),
so memory is flat in the number of chips and the test set, and any batching gives the same
numbers. Per unit (an example, or a token of a sequence task), `hits` says whether this chip
got it right: an example's (a token's) reliability is its share of chips with a hit.
"""

from __future__ import annotations

from abc import abstractmethod
from dataclasses import dataclass
from typing import Any, ClassVar

from pydantic import BaseModel, ConfigDict
from torch import Tensor

from noiseproof.registry import Registry


@dataclass(frozen=True)
class Metric:
    """One per-chip metric: its name, its direction, and whether it reads in % (accuracies)."""

    name: str
    higher_is_better: bool
    percent: bool = False

    def worst(self, values: Tensor) -> float:
        """The worst chip's value in this metric's own direction (min or max)."""
        return float(values.min() if self.higher_is_better else values.max())


class Task(BaseModel):
    """Base of every task: pydantic fields are its settings (loss kind, tolerance...).

    >>> import noiseproof as nf
    >>> task = nf.create_task("classification")
    >>> task.primary.name, task.primary.higher_is_better
    ('accuracy', True)
    """

    model_config = ConfigDict(extra="forbid", frozen=True)
    registered_name: ClassVar[str] = ""
    metrics: ClassVar[tuple[Metric, ...]] = ()
    """The per-chip metrics, the first being the primary one (tables, validation, selection)."""
    sum_names: ClassVar[tuple[str, ...]] = ()
    """Names of the per-chip sums, in order (a task may repeat them per target column)."""

    @property
    def primary(self) -> Metric:
        """The metric that tables show, validation reports and checkpoint selection ranks."""
        return self.metrics[0]

    @abstractmethod
    def check_targets(self, y: Any, name: str) -> None:
        """TypeError/ValueError naming `name` unless `y` is a target tensor this task reads."""

    @abstractmethod
    def check_outputs(self, outputs: Tensor, y: Tensor, name: str) -> None:
        """ValueError naming `name` unless a model's `outputs` on the first examples fit the
        targets `y` of every example (shape, and class/token ids within the outputs)."""

    @abstractmethod
    def loss(self, outputs: Tensor, y: Tensor) -> Tensor:
        """The training loss of one batch: a scalar, the mean over the batch's units."""

    @abstractmethod
    def divergence(self, outputs: Tensor, reference: Tensor, y: Tensor) -> Tensor:
        """Distance of `outputs` from `reference` outputs on the same batch (a scalar): the
        robustness and consistency losses (KL of the predicted distributions, MSE of a
        regression's outputs), over the units that count (`y` says which)."""

    @abstractmethod
    def hits(self, outputs: Tensor, y: Tensor) -> Tensor:
        """Per unit, whether this chip got it right: bool [*chips, *unit_shape(y)]."""

    def unit_mask(self, y: Tensor) -> Tensor | None:
        """Which units count (bool, unit-shaped), or None when all do (padding excluded)."""
        return None

    @abstractmethod
    def sums(self, outputs: Tensor, y: Tensor) -> Tensor:
        """Per chip, the float64 sums of this batch the metrics are made of: [*chips, S]."""

    @abstractmethod
    def chip_metrics(self, sums: Tensor) -> dict[str, Tensor]:
        """Each metric per chip from the sums over the whole test set ([K, S] -> {name: [K]})."""

    def spec(self) -> dict:
        """{'name': ..., **settings}."""
        return {"name": self.registered_name, **self.model_dump(mode="json")}


tasks: Registry[Task] = Registry("task")

"""The grid as a plan of independent jobs: train a (method, seed); evaluate it on a chip range.

A `compare` run is methods x seeds trainings, then methods x noise models x levels x seeds
evaluations of K chips each, optionally cut into shards of `transfers_per_job` chips. Every job
is a small frozen value: an executor (noiseproof.experiments.executors) can ship it anywhere,
and its result depends on nothing but the job and the config (chip k's draw depends only on
(seed, noise, level, k), so shards merge exactly). An evaluation carries its noise model
already set to its level (`noise_model`), so no one splits a label and a number apart again.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class TrainJob:
    """Train (or load) the model of method `method` (its label) with `seed`."""

    method: str
    seed: int

    @property
    def name(self) -> str:
        """How logs and failure reports call the job."""
        return f"train {self.method} seed {self.seed}"


@dataclass(frozen=True)
class EvalJob:
    """Evaluate the (method, seed) model under noise model `noise` (its label) at `level` on
    chips [first_chip, first_chip + chips) of the level's `transfers` chips.

    noise_model: that noise model set to `level` (a noiseproof NoiseModel; None only in
    plans of bare levels, which the grid never runs). Not part of the job's identity: two
    jobs are equal when their labels, level, seed and chips are.
    """

    method: str
    seed: int
    noise: str
    level: float
    first_chip: int
    chips: int
    transfers: int
    noise_model: Any = field(default=None, compare=False, repr=False)

    @property
    def training(self) -> TrainJob:
        """The job whose model this one evaluates."""
        return TrainJob(self.method, self.seed)

    @property
    def whole(self) -> bool:
        """True when the job covers every chip of its level (no shards to merge)."""
        return self.first_chip == 0 and self.chips == self.transfers

    @property
    def name(self) -> str:
        """How logs and failure reports call the job."""
        chips = "" if self.whole else f" chips {self.first_chip}-{self.first_chip + self.chips}"
        return f"evaluate {self.method} seed {self.seed} {self.noise}={self.level:g}{chips}"


Job = TrainJob | EvalJob


def shard_ranges(transfers: int, per_job: int | None) -> list[tuple[int, int]]:
    """(first_chip, chips) of each shard: consecutive ranges of `per_job` chips (the last may be
    smaller) covering range(transfers); one range when `per_job` is None."""
    size = transfers if per_job is None else max(1, min(per_job, transfers))
    return [(start, min(size, transfers - start)) for start in range(0, transfers, size)]


def at_level(item: Any) -> tuple[float, Any]:
    """(level, noise model or None) of a sweep item: a (level, noise model set to it) pair or
    a bare level."""
    return (item, None) if isinstance(item, int | float) else (item[0], item[1])


def plan_grid(
    methods: Sequence[str],
    seeds: Sequence[int],
    sweeps: Iterable[tuple[str, Sequence[Any]]],
    transfers: int,
    transfers_per_job: int | None = None,
) -> list[Job]:
    """Every job of a grid, trainings first: for each seed and method one TrainJob, then for each
    noise model and level its EvalJobs, one per shard of chips (`shard_ranges`).

    sweeps: (noise label, its levels) pairs, each level a (level, noise model set to it) pair
    (`ExperimentConfig.sweeps`) or a bare number."""
    sweeps = [(noise, [at_level(item) for item in items]) for noise, items in sweeps]
    trainings: list[Job] = [TrainJob(m, s) for s in seeds for m in methods]
    evaluations: list[Job] = [
        EvalJob(m, s, noise, level, first, chips, transfers, model)
        for s in seeds
        for m in methods
        for noise, items in sweeps
        for level, model in items
        for first, chips in shard_ranges(transfers, transfers_per_job)
    ]
    return trainings + evaluations

"""The grid as a plan of independent jobs: train a (method, seed); evaluate it on a chip range.

A `compare` run is methods x seeds trainings, then methods x noise models x levels x seeds
evaluations of K chips each, optionally cut into shards of `transfers_per_job` chips. Every job
is a small frozen value: an executor (noiseproof.experiments.executors) can ship it anywhere,
and its result depends on nothing but the job and the config (chip k's draw depends only on
(seed, noise, level, k), so shards merge exactly).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass


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
    """Evaluate the (method, seed) model under `noise` at `level` on chips
    [first_chip, first_chip + chips) of the level's `transfers` chips."""

    method: str
    seed: int
    noise: str
    level: float
    first_chip: int
    chips: int
    transfers: int

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


def plan_grid(
    methods: Sequence[str],
    seeds: Sequence[int],
    levels: Iterable[tuple[str, Sequence[float]]],
    transfers: int,
    transfers_per_job: int | None = None,
) -> list[Job]:
    """Every job of a grid, trainings first: for each seed and method one TrainJob, then for each
    (noise, level) its EvalJobs, one per shard of chips (`shard_ranges`)."""
    levels = [(noise, tuple(values)) for noise, values in levels]
    trainings: list[Job] = [TrainJob(m, s) for s in seeds for m in methods]
    evaluations: list[Job] = [
        EvalJob(m, s, noise, level, first, chips, transfers)
        for s in seeds
        for m in methods
        for noise, values in levels
        for level in values
        for first, chips in shard_ranges(transfers, transfers_per_job)
    ]
    return trainings + evaluations

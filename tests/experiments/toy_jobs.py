"""Job functions for the executor tests (importable by Ray's worker processes)."""

from __future__ import annotations

from noiseproof.experiments.plan import EvalJob, TrainJob


def toy_task(job, needed, scale):
    """A training returns its seed x scale; an evaluation adds its first chip to its training's."""
    if isinstance(job, TrainJob):
        if job.method == "broken":
            raise ValueError("training broke")
        return job.seed * scale
    assert isinstance(job, EvalJob)
    return needed + job.first_chip

"""Executors: who runs a plan of jobs (noiseproof.experiments.plan) and where.

Every executor follows one protocol (`Executor`) with one failure behaviour: each job that
finishes is handed to `done` (so its record is kept), a job that fails is collected as a
`Failure` named by its job while the others go on, the evaluations of a failed training are
reported as not run, and `run` returns the failures (it raises only on an interrupt such as
Ctrl-C, or on `LaunchStopped`: a torchrun process of this launch is gone, so no job can go on).

- `LocalExecutor` runs them in this process, each evaluation right after its training (the
  order and output of a plain `compare`); `in_process` is True, so jobs share this process's
  loaded data, models and progress bars.
- `RayExecutor` submits every job to Ray (a local instance with this machine's CPUs and GPUs,
  or a running cluster): trainings first, each evaluation as soon as its training finished
  (its training's result is a task argument, so Ray schedules it then). Failures of a task
  are retried by Ray (`retries`) first. Records are written by the jobs themselves into the
  output folder, which on a cluster must be storage every node sees.

`task(job, needed, *args)` is the job function: `needed` is the result of the job's training
for an evaluation (None for a training). For Ray it must be importable on the workers (a
function of an installed module).
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from noiseproof.errors import LaunchStopped
from noiseproof.experiments.plan import EvalJob, Job, TrainJob
from noiseproof.experiments.ray_cluster import connect
from noiseproof.progress import Silent

Task = Callable[..., Any]
Done = Callable[[Job, Any], None]
_log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Failure:
    """A job that did not finish, and why (one line)."""

    job: Job
    reason: str

    def line(self) -> str:
        """'<job name>: <reason>'."""
        return f"{self.job.name}: {self.reason}"


class Executor(Protocol):
    """Runs a plan of jobs (see the module docstring for the one failure behaviour).

    name: how the run's summary line calls it; in_process: the jobs run in this process (they
    may use the data and models it already holds, and draw progress bars)."""

    name: str
    in_process: bool

    def start(self) -> Any:
        """Reach whatever runs the jobs (a Ray cluster) before any work or write: one line
        naming the problem when it cannot, within a bounded time."""
        ...

    def run(
        self, jobs: Sequence[Job], task: Task, args: tuple, done: Done, bar: Silent | None = None
    ) -> list[Failure]:
        """Run `task(job, needed, *args)` for every job, `done(job, result)` for each that
        finished (`bar` advanced after every job); the failures, each once."""
        ...


def not_run(failures: list[Failure]) -> list[Failure]:
    """The failures with each evaluation of a failed training marked 'not run'."""
    failed = {f.job for f in failures if isinstance(f.job, TrainJob)}
    return [
        Failure(f.job, f"not run: {f.job.training.name} failed")
        if isinstance(f.job, EvalJob) and f.job.training in failed
        else f
        for f in failures
    ]


def depth_first(jobs: Sequence[Job]) -> list[Job]:
    """The jobs reordered so each training is followed by its evaluations (plan order kept
    otherwise); evaluations of models that are not trained here (pretrained) come at their
    training's place too."""
    evaluations: dict[TrainJob, list[Job]] = {}
    for job in jobs:
        if isinstance(job, EvalJob):
            evaluations.setdefault(job.training, []).append(job)
    ordered: list[Job] = []
    for job in jobs:
        if isinstance(job, TrainJob):
            ordered += [job, *evaluations.pop(job, [])]
    for rest in evaluations.values():
        ordered += rest
    return ordered


class LocalExecutor:
    """Every job in this process, in depth-first order; a failure is collected and the other
    jobs go on (a failed training's evaluations are not run)."""

    name = "local"
    in_process = True

    def start(self) -> None:
        """Nothing to reach: the jobs run in this process."""

    def run(
        self, jobs: Sequence[Job], task: Task, args: tuple, done: Done, bar: Silent | None = None
    ) -> list[Failure]:
        """Run `task(job, needed, *args)` for every job; `done(job, result)` after each that
        finished; the failures."""
        results: dict[TrainJob, Any] = {}
        failures: list[Failure] = []
        failed: set[TrainJob] = set()
        waiting = Counter(job.training for job in jobs if isinstance(job, EvalJob))
        for job in depth_first(jobs):
            training = job.training if isinstance(job, EvalJob) else job
            if isinstance(job, EvalJob) and training in failed:
                failures.append(Failure(job, "never started"))
            else:
                try:
                    needed = results.get(training) if isinstance(job, EvalJob) else None
                    result = task(job, needed, *args)
                    if isinstance(job, TrainJob):
                        results[job] = result
                    done(job, result)
                except LaunchStopped:
                    raise  # the process group is gone: no other job can run
                except Exception as error:  # noqa: BLE001 - reported by name, the rest go on
                    _log.debug(f"{job.name} failed", exc_info=True)
                    failures.append(Failure(job, reason(error)))
                    if isinstance(job, TrainJob):
                        failed.add(job)
                        results.pop(job, None)
            if isinstance(job, EvalJob):
                waiting[training] -= 1
            if not waiting[training]:  # its last evaluation ran: let the model go
                results.pop(training, None)
            if bar is not None:
                bar.update(1)
        return not_run(failures)


@dataclass
class RayExecutor:
    """Jobs as Ray tasks. address: None starts a local Ray instance with this machine's CPUs
    and GPUs; 'auto' or 'host:port' joins a running cluster. cpus_per_job / gpus_per_job are
    each task's resource request (fractional GPUs allowed); retries: Ray's retries of a task
    that failed (its worker died, or an OSError/RuntimeError such as a CUDA error)."""

    address: str | None = None
    cpus_per_job: float = 1.0
    gpus_per_job: float = 0.0
    retries: int = 2
    name = "ray"
    in_process = False

    def start(self) -> Any:
        """The `ray` module, connected (a local instance unless `address` names a cluster),
        within a bounded time and checked to fit one job (noiseproof.experiments.ray_cluster)."""
        return connect(self.address, self.cpus_per_job, self.gpus_per_job)

    def run(
        self, jobs: Sequence[Job], task: Task, args: tuple, done: Done, bar: Silent | None = None
    ) -> list[Failure]:
        """Submit every job, collect results as they finish; the failures, each once."""
        ray = self.start()
        remote = ray.remote(task).options(
            num_cpus=self.cpus_per_job,
            num_gpus=self.gpus_per_job,
            max_retries=self.retries,
            retry_exceptions=[OSError, RuntimeError],
        )
        shared = [ray.put(arg) for arg in args]
        refs: dict[Any, Job] = {}
        trained: dict[TrainJob, Any] = {}
        for job in jobs:  # trainings come first in a plan; an evaluation waits on its training
            needed = trained.get(job.training) if isinstance(job, EvalJob) else None
            ref = remote.remote(job, needed, *shared)
            refs[ref] = job
            if isinstance(job, TrainJob):
                trained[job] = ref
        failures: list[Failure] = []
        pending = list(refs)
        while pending:
            ready, pending = ray.wait(pending, num_returns=1)
            job = refs[ready[0]]
            try:
                done(job, ray.get(ready[0]))
            except Exception as error:  # noqa: BLE001 - any task failure is reported, not raised
                _log.debug(f"{job.name} failed", exc_info=True)
                failures.append(Failure(job, reason(error)))
            if bar is not None:
                bar.update(1)
        return not_run(failures)


def reason(error: BaseException) -> str:
    """The last line of the task's own exception (Ray wraps it; `cause` is the original)."""
    cause = getattr(error, "cause", None) or error
    lines = str(cause).strip().splitlines()
    return f"{type(cause).__name__}: {lines[-1] if lines else ''}".rstrip(": ")[:300]

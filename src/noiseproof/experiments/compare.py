"""`compare`: methods x noise models x levels x seeds as independent jobs, each saved when done.

A run reads plan -> execute -> assemble -> report:
  plan      every check first (the folder, the data, the task, the given checkpoints, under
            --resume every record already there), then the jobs (noiseproof.experiments.plan);
  execute   the configured executor runs them (noiseproof.experiments.executors: local or
            Ray, one failure behaviour: finished jobs kept, failures reported by name);
  assemble  the results.json data from the collected records, in plan order;
  report    results.json, results.csv, report.md/html, plots and the console tables.

The output folder is a noiseproof.experiments.run_folder.RunFolder: its layout, its lock, the
consent rules (--resume, --overwrite) and strict-JSON records. Nothing is written into it
(not even config.yaml) before the config, the data and every given checkpoint have been
checked, so a refused run leaves the folder as it found it.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from contextlib import nullcontext
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from torch import nn

from noiseproof.config import ExperimentConfig
from noiseproof.data.base import Dataset
from noiseproof.errors import NoiseproofError
from noiseproof.experiments.analyses import flatness_table, write_analyses
from noiseproof.experiments.calibrated import with_calibrated
from noiseproof.experiments.decision import comparisons, pareto, verdict_rows
from noiseproof.experiments.executors import Executor, LocalExecutor, RayExecutor
from noiseproof.experiments.grid import (
    GridRun,
    check_finished,
    merge_shards,
    remember_data,
    run_job,
)
from noiseproof.experiments.jobs import describe_task, run_task
from noiseproof.experiments.plan import EvalJob, Job, TrainJob, plan_grid
from noiseproof.experiments.provenance import checkpoint_digest, data_fingerprint
from noiseproof.experiments.report import write_report
from noiseproof.experiments.results import (
    primary_metric,
    summary_rows,
    table_caption,
    text_table,
    to_csv,
)
from noiseproof.experiments.run_folder import RunFolder
from noiseproof.outputs import check_out
from noiseproof.progress import progress_bar
from noiseproof.restore import model_from_checkpoint
from noiseproof.settings import RunSettings
from noiseproof.tasks import Task
from noiseproof.training.checkpoints import check_fits, load_checkpoint
from noiseproof.training.distributed import is_distributed, is_main

_log = logging.getLogger(__name__)


def make_executor(config: ExperimentConfig, in_memory: bool) -> Executor:
    """The executor the config names; an in-memory run (no output folder) runs locally."""
    chosen = config.executor
    if chosen.name == "local":
        return LocalExecutor()
    if in_memory:
        raise NoiseproofError("executor 'ray' needs an output folder its workers can write")
    return RayExecutor(chosen.address, chosen.cpus_per_job, chosen.gpus_per_job, chosen.retries)


def run_compare(
    config: ExperimentConfig,
    out: str | Path | None,
    *,
    resume: bool = False,
    overwrite: bool = False,
    pretrained: dict[str, Path] | None = None,
    progress: bool = True,
    log: Callable[[str], None] = print,
    show: Callable[[str], None] | None = None,
    loggers: Sequence[str] = (),
    trained: Callable[[str, int, nn.Module], None] | None = None,
    settings: RunSettings | None = None,
) -> dict[str, Any]:
    """Run (or resume) the grid described by `config` into `out`; returns the results.json data.

    The grid is a plan of jobs (noiseproof.experiments.plan) run by the configured executor
    (`config.executor`: local or Ray); each job writes its own record, and the results are
    assembled in plan order, so they are the same whichever executor ran (or resumed) them.
    out: the output folder, or None to run in memory (nothing written, nothing resumed).
    resume: continue the earlier run in `out` (with none there, a fresh run starts and a
    warning says so); overwrite: replace the earlier run's outputs (removed once everything
    has been checked, before anything is written). Without either, a folder holding outputs
    is refused. pretrained: method label -> checkpoint to evaluate instead of training that
    method. log: progress and info lines; show: the results tables (default: `log`);
    loggers: --log names (csv, tensorboard) for every training, under out/logs/;
    trained: called with (method label, seed, model) once each model is trained or loaded.
    settings: the run's settings when the caller already made them from `config`
    (RunSettings.from_config; default: made here), so the device is resolved once.
    """
    folder = None if out is None else RunFolder(check_out(out))
    executor = make_executor(config, folder is None)
    run = GridRun(
        config,
        folder,
        resume=resume and folder is not None,
        pretrained={label: str(path) for label, path in (pretrained or {}).items()},
        progress=progress and executor.in_process,
        loggers=tuple(loggers),
        keep_models=executor.in_process,
        settings=settings,  # type: ignore[arg-type]  # None: GridRun makes them from config
    )
    if is_distributed():  # under torchrun: every rank trains (DDP), rank 0 evaluates and writes
        if not executor.in_process:
            raise NoiseproofError("under torchrun the grid runs with the local executor")
        if not is_main():
            return train_along(replace(run, write=False, keep_models=False, progress=False))
    with folder.locked() if folder is not None else nullcontext():
        started = time.perf_counter()
        plan = make_plan(run, executor, overwrite=overwrite)
        run = plan.run
        for note in plan.notes:
            _log.warning(note)
        log(
            f"dataset {plan.data.name}: {len(plan.data.y_train)} train / "
            f"{len(plan.data.y_val)} val / {len(plan.data.y_test)} test, input "
            f"{plan.data.input_shape}, {plan.data.num_outputs} outputs; task "
            f"{describe_task(plan.task, config.task, plan.data)}; device "
            f"{run.settings.device}; executor {executor.name}"
        )
        collected = execute(plan, executor, trained, progress, log)
        results = assemble(config, plan.jobs, collected, time.perf_counter() - started)
        if folder is not None:
            report(folder, config, results, plan.data, log, show or log)
    return results


@dataclass(frozen=True)
class Plan:
    """A checked run, ready to execute: the run (its `resume` now says whether an earlier run
    is continued), its data, task and data fingerprint, its jobs, and warnings to show."""

    run: GridRun
    data: Dataset
    task: Task
    fingerprint: str
    jobs: list[Job]
    notes: tuple[str, ...] = ()


def make_plan(run: GridRun, executor: Executor, *, overwrite: bool) -> Plan:
    """Every check before any work, in order: the given checkpoints are readable; the folder
    may be written (RunFolder.start: consent, the same config, the same evaluated checkpoint);
    the data loads, every method can train its task and every given checkpoint fits it; under
    --resume every record already there is this run's; the executor reaches what runs the
    jobs (a Ray cluster). Only then is the folder written: the old outputs removed
    (--overwrite) and config.yaml saved."""
    config, folder = run.config, run.folder
    given = {label: load_checkpoint(path) for label, path in run.pretrained.items()}
    digests = {label: checkpoint_digest(state, meta) for label, (state, meta) in given.items()}
    resumed = False
    if folder is not None:
        named = {label: (run.pretrained[label], digests[label]) for label in given}
        resumed = folder.start(run.raw, resume=run.resume, overwrite=overwrite, given=named)
    data = config.dataset.load()  # before writing anything: a missing data path leaves no trace
    task = run_task(config, data)  # every method can train it, before anything is written
    for label, (state, meta) in given.items():  # it fits the data, before any forward
        where = run.pretrained[label]
        check_fits(meta, data.input_shape, data.num_outputs, where, data.vocabulary)
        model_from_checkpoint(state, meta)  # its weights fit its model
    fingerprint = data_fingerprint(config.dataset.spec(), data)
    labels = [m.label for m in config.methods]
    per_job = config.executor.transfers_per_job
    jobs = plan_grid(labels, config.seeds, config.sweeps(), config.transfers, per_job)
    notes: tuple[str, ...] = ()
    if run.resume and not resumed:
        assert folder is not None  # resume is only set with a folder
        notes = (f"--resume: {folder.path} holds no earlier run, so a fresh one starts",)
    run = replace(run, resume=resumed)
    if resumed:  # every finished record is ours, or the run stops before doing any work
        check_finished(run, jobs, task, fingerprint, digests)
    executor.start()  # an unreachable cluster is one line, with nothing written
    if folder is not None:
        if overwrite:
            folder.clear()
        folder.write_config(run.raw)
    return Plan(run, data, task, fingerprint, jobs, notes)


def execute(
    plan: Plan,
    executor: Executor,
    trained: Callable[[str, int, nn.Module], None] | None,
    progress: bool,
    log: Callable[[str], None],
) -> Collected:
    """Run every job of the plan; the collected results. Failures are listed one per line
    (`failed: <job>: <reason>`), then NoiseproofError: every finished job is kept."""
    if executor.in_process:  # the jobs of this process use the data already loaded
        remember_data(plan.run, plan.data, plan.fingerprint)
    collected = Collected(plan.run, trained)
    bar = progress_bar(len(plan.jobs), "compare jobs", enabled=progress, unit="job", leave=True)
    try:
        failures = executor.run(plan.jobs, run_job, (plan.run,), collected.add, bar)
    finally:
        bar.close()
    for failure in failures:
        log(f"failed: {failure.line()}")
    if failures:
        raise NoiseproofError(
            f"{len(failures)} job(s) failed (listed above); the {len(plan.jobs) - len(failures)} "
            "finished are kept: fix the cause and run again with --resume"
        )
    return collected


def assemble(
    config: ExperimentConfig, jobs: list[Job], collected: Collected, wall: float
) -> dict[str, Any]:
    """The results.json data: the config, the evaluation records and trainings in plan order,
    the analyses the config asked for, and the wall time."""
    records = with_calibrated([collected.records[key] for key in evaluation_keys(config)])
    trained_jobs = [job for job in jobs if isinstance(job, TrainJob)]
    trainings = [collected.trainings[job] for job in trained_jobs]
    decided = comparisons(records, trainings, config.confidence)
    results: dict[str, Any] = {
        "config": config.to_dict(),
        "wall_seconds": wall,
        "jobs": records,
        "trainings": trainings,
        "comparisons": decided,
        "pareto": pareto(decided),
    }
    if config.attack is not None:
        results["attacks"] = [a for job in trained_jobs for a in collected.attacks[job]]
    if config.landscape is not None:
        landscapes = [collected.landscapes[job] for job in trained_jobs]
        results["landscapes"] = [item for item in landscapes if item]
        results["flatness"] = flatness_table(results["landscapes"])
    if config.cost is not None:  # per trained model, the totals of its training's estimate
        results["cost_estimate"] = [cost_summary(t) for t in trainings if "cost_estimate" in t]
    return results


def cost_summary(training: dict[str, Any]) -> dict[str, Any]:
    """One row of results.json `cost_estimate`: the method, seed and totals of a training's
    estimate (the full estimate, per layer, is in its training record)."""
    estimate = training["cost_estimate"]
    return {
        "method": training["method"],
        "seed": training.get("seed"),
        **estimate["totals"],
        "energy_j": estimate["energy_j"]["total"],
        "latency_s": estimate["latency_s"]["total"],
        "tops_per_w": estimate["tops_per_w"],
    }


def report(
    folder: RunFolder,
    config: ExperimentConfig,
    results: dict[str, Any],
    data: Dataset,
    log: Callable[[str], None],
    show: Callable[[str], None],
) -> None:
    """Write results.json (strict JSON), results.csv, the report and the analyses into the
    folder; show the results tables."""
    records, wall = results["jobs"], results["wall_seconds"]
    folder.write_record(folder.results_file, results)
    folder.write_text("results.csv", to_csv(records))
    summary = (
        f"{data.name} / {config.model.registered_name}: {len(config.methods)} methods x "
        f"{len(config.seeds)} seed(s), {config.transfers} transfers per level; "
        f"wall time {wall:.1f} s (this run)"
    )
    write_report(
        folder.path,
        records,
        results["trainings"],
        results["config"],
        summary,
        results["comparisons"],
    )
    write_analyses(folder.path, results.get("attacks", []), results.get("landscapes", []), show)
    for noise, header, rows in summary_rows(records):
        name = primary_metric(next(r for r in records if r["noise"] == noise))
        show("\n" + table_caption(name, noise, config.transfers))
        show(text_table(header, rows))
        _, verdicts = verdict_rows(results["comparisons"], noise)
        show(
            "best (chip-paired, "
            f"{100 * config.confidence:g} %): "
            + "; ".join(
                f"{level}: {best}" + (f" = {tied}" if tied != "none" else "")
                for level, best, _, tied in verdicts
            )
        )
    log(f"\nwrote {folder.path}/results.json, results.csv, report.md, report.html ({wall:.1f} s)")


def train_along(run: GridRun) -> dict[str, Any]:
    """A torchrun rank above 0 in a `compare`: run the same trainings as rank 0, in the same
    order (each a DDP training with it, the same ones skipped on --resume), write nothing and
    evaluate nothing (rank 0 does both; `run.write` is False); returns an empty result."""
    config = run.config
    remember_data(run, config.dataset.load())
    for job in plan_grid([m.label for m in config.methods], config.seeds, [], config.transfers):
        run_job(job, None, run)
    return {}


def evaluation_keys(config: ExperimentConfig) -> list[tuple[str, int, str, float]]:
    """(method, seed, noise, level) of every evaluation, in the order results list them."""
    return [
        (entry.label, seed, noise.label, level)
        for seed in config.seeds
        for entry in config.methods
        for noise in config.noise
        for level in config.levels_of(noise)
    ]


class Collected:
    """What the finished jobs returned, gathered as they arrive (in any order): trainings,
    analyses, evaluation records (shards merged once all have arrived, the merged record
    written into the folder)."""

    def __init__(self, run: GridRun, trained: Callable[[str, int, nn.Module], None] | None):
        self.run, self.trained = run, trained
        self.trainings: dict[TrainJob, dict[str, Any]] = {}
        self.attacks: dict[TrainJob, list[dict[str, Any]]] = {}
        self.landscapes: dict[TrainJob, dict[str, Any] | None] = {}
        self.records: dict[tuple[str, int, str, float], dict[str, Any]] = {}
        self.shards: dict[tuple[str, int, str, float], list[dict[str, Any]]] = {}

    def add(self, job: Job, result: dict[str, Any]) -> None:
        """Take one finished job's result."""
        if isinstance(job, TrainJob):
            self.trainings[job] = result["training"]
            self.attacks[job], self.landscapes[job] = result["attacks"], result["landscape"]
            if self.trained is not None and "model" in result:
                self.trained(job.method, job.seed, result["model"])
            return
        assert isinstance(job, EvalJob)
        key = (job.method, job.seed, job.noise, job.level)
        if job.whole or "first_chip" not in result:  # a whole record (also a resumed one)
            self.records[key] = result
            return
        self.shards.setdefault(key, []).append(result)
        if sum(s["chips"] for s in self.shards[key]) == job.transfers:
            self.records[key] = merge_shards(self.shards.pop(key), job, self.run)
            folder = self.run.folder
            if folder is not None:
                path = folder.job(job.method, job.noise, job.level, job.seed)
                folder.write_record(path, self.records[key])

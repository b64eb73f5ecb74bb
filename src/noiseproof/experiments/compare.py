"""`compare`: methods x noise models x levels x seeds as independent jobs, each saved when done.

Layout of the output folder:
  config.yaml                      the validated config (a resumed run must match it)
  checkpoints/<method>-seed<s>.pt  one trained model per (method, seed)
  jobs/<method>__<noise>__<level>__seed<s>.json   one record per evaluation job
  results.json, results.csv, report.md, report.html, *.png   written at the end
An interrupted run started again with resume=True loads finished checkpoints and skips
finished jobs, so only the missing work is done; each of them is checked first to belong to
this config (records.py). While a run writes the folder it holds .noiseproof.lock (outputs.py):
a second run into it is refused, and temporary files a killed run left are removed.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import yaml
from torch import nn

from noiseproof.atomic import write_json_atomic, write_text_atomic
from noiseproof.config import RESULT_FREE_KEYS, ExperimentConfig
from noiseproof.devices import resolve_device
from noiseproof.errors import NoiseproofError
from noiseproof.experiments.analyses import flatness_table, write_analyses
from noiseproof.experiments.executors import LocalExecutor, RayExecutor
from noiseproof.experiments.grid import (
    GridRun,
    checkpoint_expect,
    checkpoint_path,
    job_expect,
    job_path,
    merge_shards,
    remember_data,
    run_job,
    shard_expect,
    shard_path,
)
from noiseproof.experiments.jobs import describe_task, model_from_checkpoint, run_task
from noiseproof.experiments.plan import Job, TrainJob, plan_grid
from noiseproof.experiments.records import check_record, read_record
from noiseproof.experiments.report import write_report
from noiseproof.experiments.results import (
    primary_metric,
    summary_rows,
    table_caption,
    text_table,
    to_csv,
)
from noiseproof.outputs import locks_output
from noiseproof.progress import progress_bar
from noiseproof.training.checkpoints import check_fits, load_checkpoint
from noiseproof.training.distributed import is_distributed, is_main


def check_folder(out: Path, config: dict[str, Any], resume: bool) -> None:
    """Refuse to overwrite finished results, or to resume them with another config (keys that
    only say how the run is executed, RESULT_FREE_KEYS, may differ)."""
    saved = out / "config.yaml"
    if resume:
        try:
            previous = yaml.safe_load(saved.read_bytes()) if saved.is_file() else config
        except (yaml.YAMLError, UnicodeDecodeError):
            raise NoiseproofError(
                f"--resume: {saved} is not the YAML this program wrote; use another --out"
            ) from None
        if not isinstance(previous, dict) or _results_part(previous) != _results_part(config):
            raise NoiseproofError(
                f"--resume: the config differs from the one in {saved}; use another --out"
            )
    elif any((out / "jobs").glob("*.json")) or any((out / "checkpoints").glob("*.pt")):
        raise NoiseproofError(
            f"{out} already holds results: pass --resume to continue them or choose another --out"
        )


def _results_part(raw: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in raw.items() if k not in RESULT_FREE_KEYS}


def check_finished(out: Path, run: GridRun, jobs: list[Job]) -> None:
    """Under --resume: NoiseproofError (one line, naming the file) unless every checkpoint and
    job record already in `out` is readable and belongs to the job its file name says."""
    for job in jobs:
        if isinstance(job, TrainJob):
            ckpt = checkpoint_path(out, job.method, job.seed)
            if job.method not in run.pretrained and ckpt.is_file():
                try:
                    _, meta = load_checkpoint(ckpt)
                except NoiseproofError as error:
                    raise NoiseproofError(f"{error}; delete it to train it again") from None
                check_record(ckpt, meta, checkpoint_expect(job.method, job.seed))
            continue
        whole = job_path(out, job.method, job.noise, job.level, job.seed)
        if whole.is_file():
            read_record(whole, job_expect(run, job))
        elif not job.whole and shard_path(out, job).is_file():
            read_record(shard_path(out, job), shard_expect(run, job))


def make_executor(config: ExperimentConfig, in_memory: bool) -> LocalExecutor | RayExecutor:
    """The executor the config names; an in-memory run (no output folder) runs locally."""
    chosen = config.executor
    if chosen.name == "local":
        return LocalExecutor()
    if in_memory:
        raise NoiseproofError("executor 'ray' needs an output folder its workers can write")
    return RayExecutor(chosen.address, chosen.cpus_per_job, chosen.gpus_per_job, chosen.retries)


@locks_output("out", subfolders=("jobs", "jobs/shards", "checkpoints", "logs/*"))
def run_compare(
    config: ExperimentConfig,
    out: str | Path | None,
    *,
    resume: bool = False,
    pretrained: dict[str, Path] | None = None,
    progress: bool = True,
    log: Callable[[str], None] = print,
    show: Callable[[str], None] | None = None,
    loggers: Sequence[str] = (),
    trained: Callable[[str, int, nn.Module], None] | None = None,
) -> dict[str, Any]:
    """Run (or resume) the grid described by `config` into `out`; returns the results.json data.

    The grid is a plan of jobs (noiseproof.experiments.plan) run by the configured executor
    (`config.executor`: local or Ray); each job writes its own record, and the results are
    assembled in plan order, so they are the same whichever executor ran (or resumed) them.
    out: the output folder, or None to run in memory (nothing written, nothing resumed).
    pretrained: method label -> checkpoint to evaluate instead of training that method.
    log: progress and info lines; show: the results tables (default: `log`);
    loggers: --log names (csv, tensorboard) for every training, under out/logs/;
    trained: called with (method label, seed, model) once each model is trained or loaded.
    """
    out = None if out is None else Path(out)
    executor = make_executor(config, out is None)
    local = isinstance(executor, LocalExecutor)
    run = GridRun(
        config,
        None if out is None else str(out),
        resume=resume and out is not None,
        pretrained={label: str(path) for label, path in (pretrained or {}).items()},
        progress=progress and local,
        loggers=tuple(loggers),
        keep_models=local,
    )
    if is_distributed():  # under torchrun: every rank trains (DDP), rank 0 evaluates and writes
        if not local:
            raise NoiseproofError("under torchrun the grid runs with the local executor")
        if not is_main():
            return train_along(replace(run, write=False, keep_models=False, progress=False))
    raw = run.raw
    levels = [(n.label, config.levels_of(n)) for n in config.noise]
    labels = [m.label for m in config.methods]
    per_job = config.executor.transfers_per_job
    jobs = plan_grid(labels, config.seeds, levels, config.transfers, per_job)
    if out is not None:
        check_folder(out, raw, run.resume)
    if run.resume:  # every finished record is ours, or the run stops before doing any work
        check_finished(out, run, jobs)
    started = time.perf_counter()
    data = config.dataset.load()  # before writing anything: a missing data path leaves no trace
    device = resolve_device(config.device)
    task = run_task(config, data)  # every method can train it, before anything is written
    for path in (pretrained or {}).values():  # a checkpoint must fit the data, before any forward
        state, meta = load_checkpoint(path)
        check_fits(meta, data.input_shape, data.num_outputs, f"{path}", data.vocabulary)
        model_from_checkpoint(state, meta)  # its weights fit its model, before anything is written
    if out is not None:
        write_text_atomic(out / "config.yaml", yaml.safe_dump(raw, sort_keys=False))
    log(
        f"dataset {data.name}: {len(data.y_train)} train / {len(data.y_val)} val / "
        f"{len(data.y_test)} test, input {data.input_shape}, {data.num_outputs} outputs; "
        f"task {describe_task(task, config.task, data)}; device {device}; executor {executor.name}"
    )
    if local:  # the jobs of this process use the data already loaded
        remember_data(config, data)
    collected = Collected(run, trained)
    bar = progress_bar(len(jobs), "compare jobs", enabled=progress, unit="job", leave=True)
    try:
        failures = executor.run(jobs, run_job, (run,), collected.add, bar)
    finally:
        bar.close()
    for failure in failures:
        log(f"failed: {failure.line()}")
    if failures:
        raise NoiseproofError(
            f"{len(failures)} job(s) failed (listed above); the {len(jobs) - len(failures)} "
            "finished are kept: fix the cause and run again with --resume"
        )
    wall = time.perf_counter() - started
    records = [collected.records[key] for key in evaluation_keys(config)]
    trained_jobs = [job for job in jobs if isinstance(job, TrainJob)]
    trainings = [collected.trainings[job] for job in trained_jobs]
    results = {"config": raw, "wall_seconds": wall, "jobs": records, "trainings": trainings}
    if config.attack is not None:
        results["attacks"] = [a for job in trained_jobs for a in collected.attacks[job]]
    if config.landscape is not None:
        landscapes = [collected.landscapes[job] for job in trained_jobs]
        results["landscapes"] = [item for item in landscapes if item]
        results["flatness"] = flatness_table(results["landscapes"])
    if out is None:
        return results
    write_json_atomic(out / "results.json", results)
    write_text_atomic(out / "results.csv", to_csv(records))
    summary = (
        f"{data.name} / {config.model.registered_name}: {len(config.methods)} methods x "
        f"{len(config.seeds)} seed(s), {config.transfers} transfers per level; "
        f"wall time {wall:.1f} s (this run)"
    )
    write_report(out, records, trainings, raw, summary)
    write_analyses(out, results.get("attacks", []), results.get("landscapes", []), show or log)
    for noise, header, rows in summary_rows(records):
        name = primary_metric(next(r for r in records if r["noise"] == noise))
        (show or log)("\n" + table_caption(name, noise, config.transfers))
        (show or log)(text_table(header, rows))
    log(f"\nwrote {out}/results.json, results.csv, report.md, report.html ({wall:.1f} s)")
    return results


def train_along(run: GridRun) -> dict[str, Any]:
    """A torchrun rank above 0 in a `compare`: run the same trainings as rank 0, in the same
    order (each a DDP training with it, the same ones skipped on --resume), write nothing and
    evaluate nothing (rank 0 does both; `run.write` is False); returns an empty result."""
    config = run.config
    remember_data(config, config.dataset.load())
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
    analyses, evaluation records (shards merged once all have arrived)."""

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
        key = (job.method, job.seed, job.noise, job.level)
        if job.whole or "first_chip" not in result:  # a whole record (also a resumed one)
            self.records[key] = result
            return
        self.shards.setdefault(key, []).append(result)
        if sum(s["chips"] for s in self.shards[key]) == job.transfers:
            self.records[key] = merge_shards(self.shards.pop(key), self.run)
            if self.run.out is not None:
                path = job_path(Path(self.run.out), job.method, job.noise, job.level, job.seed)
                write_json_atomic(path, self.records[key])

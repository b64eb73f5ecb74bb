"""The grid's job function: one training or one evaluation (or shard of one), as a pure function
of its spec (noiseproof.experiments.plan) and the run it belongs to, writing its own record.

`run_job(job, needed, run)` runs anywhere the package is installed (this process, or a Ray
worker): it reads what it needs from the config, the output folder and its training's result
(`needed`), writes its record atomically into the folder (unless the run is in memory) and
returns it. Under --resume a job whose record exists returns that record (checked to be its own).
Datasets and checkpoints are loaded once per process (`load_data`, `load_model`).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

import torch
from torch import nn

from noiseproof.atomic import write_json_atomic
from noiseproof.config import ExperimentConfig
from noiseproof.data.base import Dataset
from noiseproof.devices import resolve_device
from noiseproof.evaluation.clean import clean_metrics
from noiseproof.evaluation.transfers import TransferResult
from noiseproof.experiments.analyses import analyse_model
from noiseproof.experiments.jobs import (
    evaluate_chips,
    model_from_checkpoint,
    run_task,
    summary_record,
    train_and_save,
)
from noiseproof.experiments.plan import EvalJob, Job, TrainJob
from noiseproof.experiments.records import check_record, read_record
from noiseproof.filenames import safe_name
from noiseproof.logs import info
from noiseproof.tasks import Task
from noiseproof.training.callbacks import make_loggers
from noiseproof.training.checkpoints import load_checkpoint
from noiseproof.training.distributed import rank_device

KEPT = (
    "seed",
    "history",
    "best_epoch",
    "best_val_accuracy",
    "val_metric",
    "best_val",
    "train_seconds",
    "finish",
)
"""What a training's record keeps of its checkpoint's metadata."""


@dataclass(frozen=True)
class GridRun:
    """What every job of one run shares (sent once to Ray's workers).

    out: the output folder (None: in memory, local executor only); resume: reuse finished
    records; pretrained: method label -> checkpoint evaluated instead of training; loggers:
    the --log names; keep_models: a training returns its model too (in-process runs); write:
    False in the ranks above 0 of a torchrun launch, which train with rank 0 but write nothing.
    """

    config: ExperimentConfig
    out: str | None
    resume: bool = False
    pretrained: dict[str, str] = field(default_factory=dict)
    progress: bool = False
    loggers: tuple[str, ...] = ()
    keep_models: bool = False
    write: bool = True

    @property
    def raw(self) -> dict[str, Any]:
        """The config as written to config.yaml."""
        return self.config.to_dict()


def checkpoint_path(out: Path, label: str, seed: int) -> Path:
    """Where the model of (method `label`, `seed`) is saved."""
    return out / "checkpoints" / f"{safe_name(label)}-seed{seed}.pt"


def job_path(out: Path, label: str, noise: str, level: float, seed: int) -> Path:
    """Where the record of one evaluation (all its chips) is saved."""
    name = f"{safe_name(label)}__{safe_name(noise)}__{level:g}__seed{seed}.json"
    return out / "jobs" / name


def shard_path(out: Path, job: EvalJob) -> Path:
    """Where the record of one shard of an evaluation's chips is saved."""
    stem = job_path(out, job.method, job.noise, job.level, job.seed).stem
    last = job.first_chip + job.chips
    return out / "jobs" / "shards" / f"{stem}__chips{job.first_chip}-{last}.json"


def checkpoint_expect(label: str, seed: int) -> dict[str, Any]:
    """What the metadata of a resumed checkpoint must hold."""
    return {"label": label, "seed": seed}


def job_config(raw: dict[str, Any], method: str, noise: str, seed: int) -> dict[str, Any]:
    """The slice of the experiment config that one job used (enough to run it again)."""
    keep = ("dataset", "model", "transfers", "train", "chip", "reliability_threshold", "task")
    return {
        **{k: raw[k] for k in keep if k in raw},
        "method": next(m for m in raw["methods"] if m.get("label", m["name"]) == method),
        "noise": next(n for n in raw["noise"] if n.get("label", n["name"]) == noise),
        "seed": seed,
    }


def job_expect(run: GridRun, job: EvalJob) -> dict[str, Any]:
    """What a resumed evaluation record must hold: the job its file name says, of this config."""
    return {
        "method": job.method,
        "noise": job.noise,
        "level": job.level,
        "seed": job.seed,
        "transfers": job.transfers,
        "config": job_config(run.raw, job.method, job.noise, job.seed),
    }


def shard_expect(run: GridRun, job: EvalJob) -> dict[str, Any]:
    """What a resumed shard record must hold."""
    return {**job_expect(run, job), "first_chip": job.first_chip, "chips": job.chips}


_DATA: dict[tuple[str, str], Dataset] = {}


def data_device(config: ExperimentConfig) -> torch.device:
    """Where this process keeps the data: the config's device (under torchrun with CUDA, this
    rank's own GPU)."""
    return rank_device(resolve_device(config.device))


def load_data(config: ExperimentConfig) -> Dataset:
    """The config's dataset on this process's device (`data_device`), loaded once per process."""
    device = data_device(config)
    key = (repr(config.dataset.spec()), str(device))
    if key not in _DATA:
        _DATA.clear()  # one dataset at a time: a worker serves one run
        _DATA[key] = config.dataset.load().to(device)
    return _DATA[key]


def load_task(config: ExperimentConfig) -> Task:
    """The run's task (`jobs.run_task`: the config's, or the one its data's targets say)."""
    return run_task(config, load_data(config))


def remember_data(config: ExperimentConfig, data: Dataset) -> None:
    """Make `data` (already loaded by this process) what `load_data` returns for this config,
    moved to `data_device` once."""
    device = data_device(config)
    _DATA.clear()
    _DATA[(repr(config.dataset.spec()), str(device))] = data.to(device)


@lru_cache(maxsize=2)
def _checkpoint_model(path: str, mtime: float, device: str) -> nn.Module:
    state, meta = load_checkpoint(path)
    return model_from_checkpoint(state, meta, device)


def load_model(path: Path, device: torch.device) -> nn.Module:
    """The module of a checkpoint file on `device`, loaded once per process and file version."""
    return _checkpoint_model(str(path), path.stat().st_mtime, str(device))


def run_job(job: Job, needed: dict[str, Any] | None, run: GridRun) -> dict[str, Any]:
    """Run one job of `run` (see the module docstring); `needed`: its training's result."""
    if isinstance(job, TrainJob):
        return run_training(job, run)
    return run_evaluation(job, needed or {}, run)


def run_training(job: TrainJob, run: GridRun) -> dict[str, Any]:
    """Train (or load: pretrained, or resumed) one model, run its analyses; the record
    {'training': ..., 'attacks': [...], 'landscape': ..., 'checkpoint': path or None} (and
    'model' with keep_models)."""
    config, out = run.config, Path(run.out) if run.out is not None else None
    data = load_data(config)
    device = resolve_device(config.device)
    entry = next(m for m in config.methods if m.label == job.method)
    ckpt = checkpoint_path(out, job.method, job.seed) if out is not None else None
    given = run.pretrained.get(job.method)
    writes = ckpt if run.write else None
    if given or (run.resume and ckpt.is_file()):
        state, meta = load_checkpoint(given or ckpt)
        if not given:  # a checkpoint of this folder must be this (method, seed)'s
            check_record(ckpt, meta, checkpoint_expect(job.method, job.seed))
        model = model_from_checkpoint(state, meta, device)
        info(f"loaded {given or ckpt}")
    else:
        logs = out / "logs" / safe_name(f"{job.method}-seed{job.seed}") if writes else None
        model, meta = train_and_save(
            config,
            entry,
            data,
            writes,
            noise=config.noise[0].model,
            seed=job.seed,
            task=load_task(config),
            progress=run.progress,
            log=info,
            callbacks=make_loggers(run.loggers, logs) if run.loggers and logs else (),
        )
    attacks, landscape = [], None
    if run.write:  # the analyses are evaluations: rank 0's alone under torchrun
        jobs = out / "jobs" if out is not None else None
        attacks, landscape = analyse_model(
            config, model, data, job.method, job.seed, jobs, run.resume, load_task(config)
        )
    record = {
        "training": {"method": job.method, **{k: meta[k] for k in KEPT if k in meta}},
        "attacks": attacks,
        "landscape": landscape,
        "checkpoint": str(given or ckpt) if (given or ckpt) else None,
    }
    return {**record, "model": model} if run.keep_models else record


def run_evaluation(job: EvalJob, needed: dict[str, Any], run: GridRun) -> dict[str, Any]:
    """Evaluate the job's chips; the full record (a whole job) or a shard record with the
    per-chip task sums and per-unit counts the merge needs."""
    config, out = run.config, Path(run.out) if run.out is not None else None
    path = None
    if out is not None:
        path = job_path(out, job.method, job.noise, job.level, job.seed)
        path = path if job.whole else shard_path(out, job)
        if run.resume and path.is_file():
            expect = job_expect(run, job) if job.whole else shard_expect(run, job)
            return read_record(path, expect)
    data = load_data(config)
    model = needed.get("model") or load_model(Path(needed["checkpoint"]), data_device(config))
    entry = next(n for n in config.noise if n.label == job.noise)
    noise = entry.model.with_level(job.level)
    task = load_task(config)
    started = time.perf_counter()
    result = evaluate_chips(
        model,
        data,
        noise,
        transfers=job.chips,
        seed=job.seed,
        noise_label=job.noise,
        selection=config.chip,
        first_chip=job.first_chip,
        batch_size=config.eval_batch_size,
        precision=config.eval_precision,
        analog=config.forward,
        task=task,
    )
    clean = clean_metrics(
        model,
        data.x_test,
        data.y_test,
        task,
        config.eval_batch_size,
        precision=config.eval_precision,
    )
    labels = {
        "method_spec": next(m for m in config.methods if m.label == job.method).method.spec(),
        "training": {k: v for k, v in needed["training"].items() if k not in ("history", "method")},
        "config": job_config(run.raw, job.method, job.noise, job.seed),
    }
    seconds = time.perf_counter() - started
    if job.whole:
        summary = summary_record(
            result,
            noise,
            noise_label=job.noise,
            seed=job.seed,
            clean=clean,
            threshold=config.reliability_threshold,
            seconds=seconds,
        )
        record = {"method": job.method, **summary, **labels}
    else:
        record = {
            "method": job.method,
            "noise": job.noise,
            "level": job.level,
            "seed": job.seed,
            "transfers": job.transfers,
            "first_chip": job.first_chip,
            "chips": job.chips,
            "chip_sums": result.sums.tolist(),
            "correct_counts": result.correct_counts.tolist(),
            **({"mask": result.mask.tolist()} if result.mask is not None else {}),
            "clean": clean,
            "seconds": seconds,
            **labels,
        }
    if path is not None:
        write_json_atomic(path, record)
    return record


def merge_shards(shards: list[dict[str, Any]], run: GridRun) -> dict[str, Any]:
    """The full record of an evaluation from its shard records (any order): per-chip task
    sums concatenated in chip order, per-unit counts summed, so the record equals the one the
    evaluation gives in a single job (but for its 'seconds', the shards' sum)."""
    shards = sorted(shards, key=lambda shard: shard["first_chip"])
    first = shards[0]
    config = run.config
    result = TransferResult(
        task=load_task(config),
        sums=torch.tensor([row for s in shards for row in s["chip_sums"]], dtype=torch.float64),
        correct_counts=sum(torch.tensor(s["correct_counts"], dtype=torch.int64) for s in shards),
        mask=torch.tensor(first["mask"], dtype=torch.bool) if "mask" in first else None,
    )
    noise = next(n for n in config.noise if n.label == first["noise"]).model
    summary = summary_record(
        result,
        noise.with_level(first["level"]),
        noise_label=first["noise"],
        seed=first["seed"],
        clean=first["clean"],
        threshold=config.reliability_threshold,
        seconds=sum(s["seconds"] for s in shards),
    )
    labels = {k: first[k] for k in ("method_spec", "training", "config")}
    return {"method": first["method"], **summary, **labels}

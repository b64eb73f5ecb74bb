"""The grid's job function: one training or one evaluation (or shard of one), as a pure function
of its spec (noiseproof.experiments.plan) and the run it belongs to, writing its own record.

`run_job(job, needed, run)` runs anywhere the package is installed (this process, or a Ray
worker): it reads what it needs from the config, the output folder and its training's result
(`needed`), writes its record atomically into the folder (unless the run is in memory) and
returns it. Every record names what it was computed from under `inputs`
(noiseproof.experiments.provenance): the checkpoint's digest, the data's fingerprint and the
job's config hash. Under --resume a job whose record exists returns that record, checked to be
its own and computed from the same inputs; a checkpoint of the folder is checked to have been
trained with this config's model, method, data and settings. Datasets and checkpoints are
loaded once per process (`load_data`, `load_model`).
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

import torch
from torch import nn

from noiseproof.analog import ir_drop_window
from noiseproof.analog_ranges import evaluation_forward
from noiseproof.chip import chip_params
from noiseproof.config import ExperimentConfig
from noiseproof.data.base import Dataset
from noiseproof.errors import NoiseproofError
from noiseproof.evaluation.clean import clean_metrics
from noiseproof.evaluation.transfers import TransferResult
from noiseproof.experiments.analyses import analyse_model
from noiseproof.experiments.calibrated import calibrated_transfers, merged_result, shard_part
from noiseproof.experiments.jobs import (
    evaluate_chips,
    run_task,
    summary_record,
    train_and_save,
)
from noiseproof.experiments.plan import EvalJob, Job, TrainJob
from noiseproof.experiments.provenance import checkpoint_digest, config_hash, data_fingerprint
from noiseproof.experiments.records import check_record, strict_json
from noiseproof.experiments.run_folder import RunFolder
from noiseproof.export.cost import estimate_model
from noiseproof.logs import info
from noiseproof.restore import model_from_checkpoint
from noiseproof.settings import RunSettings
from noiseproof.tasks import Task
from noiseproof.training.callbacks import make_loggers
from noiseproof.training.checkpoints import load_checkpoint

KEPT = (
    "seed",
    "history",
    "best_epoch",
    "best_val_accuracy",
    "val_metric",
    "best_val",
    "train_seconds",
    "cost",
    "finish",
    "analog_ranges",
)
"""What a training's record keeps of its checkpoint's metadata."""

NO_VALIDATION = "no validation split: the last epoch was kept"


@dataclass(frozen=True)
class GridRun:
    """What every job of one run shares (sent once to Ray's workers).

    folder: the output folder (None: in memory, local executor only); resume: reuse finished
    records; pretrained: method label -> checkpoint evaluated instead of training; loggers:
    the --log names; keep_models: a training returns its model too (in-process runs); write:
    False in the ranks above 0 of a torchrun launch, which train with rank 0 but write nothing;
    settings: the run's settings (noiseproof.settings.RunSettings.from_config: the device
    resolved once, the per-rank GPU under torchrun), made once per process: a pickled run (a
    Ray worker's) resolves them again where it is unpickled, on that machine's devices.
    """

    config: ExperimentConfig
    folder: RunFolder | None
    resume: bool = False
    pretrained: dict[str, str] = field(default_factory=dict)
    progress: bool = False
    loggers: tuple[str, ...] = ()
    keep_models: bool = False
    write: bool = True
    settings: RunSettings = field(default=None, compare=False)  # type: ignore[assignment]

    def __post_init__(self) -> None:
        if self.settings is None:
            object.__setattr__(self, "settings", RunSettings.from_config(self.config))

    def __getstate__(self) -> dict[str, Any]:
        return {k: v for k, v in self.__dict__.items() if k != "settings"}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        object.__setattr__(self, "settings", RunSettings.from_config(self.config))

    @property
    def raw(self) -> dict[str, Any]:
        """The config as written to config.yaml."""
        return self.config.to_dict()


def job_config(config: ExperimentConfig, method: str, noise: str, seed: int) -> dict[str, Any]:
    """The slice of the experiment config that one evaluation used (enough to run it again)."""
    raw = config.to_dict()
    keep = ("dataset", "model", "transfers", "train", "chip", "reliability_threshold", "task")
    keep += ("forward", "calibration")  # in raw only when set: a run without them keeps its hash
    return {
        **{k: raw[k] for k in keep if k in raw},
        "method": config.method(method).spec(),
        "noise": config.noise_entry(noise).spec(),
        "seed": seed,
    }


def train_config(config: ExperimentConfig, method: str, seed: int) -> dict[str, Any]:
    """The slice of the experiment config that one training used: data, model, method, train
    settings, chip selection, task, training noise (the first noise model), analog forward."""
    raw = config.to_dict()
    keep = ("dataset", "model", "train", "chip", "task")
    return {
        **{k: raw[k] for k in keep if k in raw},
        "method": config.method(method).spec(),
        "train_noise": config.noise[0].model.spec(),
        "forward": None if config.forward is None else config.forward.model_dump(mode="json"),
        "seed": seed,
    }


def checkpoint_expect(
    config: ExperimentConfig, label: str, seed: int, task: Task, fingerprint: str
) -> dict[str, Any]:
    """What the metadata of a checkpoint of the folder must hold to be resumed: the (method,
    seed) its file name says, trained with this config's model, method, data, settings, chip
    selection, training noise and task (what `jobs.train_and_save` writes), and, when it
    names its data (checkpoints written since records name their inputs), this data."""
    entry = config.method(label)
    return {
        "label": label,
        "seed": seed,
        "model": config.model.spec(),
        "method": entry.method.spec(),
        "dataset": config.dataset.spec(),
        "train": config.train.model_dump(mode="json"),
        "chip": config.chip.model_dump(mode="json"),
        "train_noise": config.noise[0].model.spec(),
        "task": task.spec(),
        "inputs.data": fingerprint,
    }


def check_checkpoint(path: Path, meta: dict[str, Any], expect: dict[str, Any]) -> None:
    """NoiseproofError naming the first difference unless a checkpoint of the folder was
    trained as `expect` says (`checkpoint_expect`; its data is compared when it names it)."""
    if "inputs" not in meta:
        expect = {k: v for k, v in expect.items() if not k.startswith("inputs.")}
    check_record(
        path,
        meta,
        expect,
        redo="delete it to train it again with --resume",
        mismatch="was trained for another run than this config",
    )


def eval_inputs(run: GridRun, job: EvalJob, digest: str | None, fingerprint: str) -> dict[str, Any]:
    """The `inputs` an evaluation record names: its checkpoint's digest, its data's
    fingerprint and the hash of its job config."""
    config = job_config(run.config, job.method, job.noise, job.seed)
    return {"checkpoint": digest, "data": fingerprint, "config": config_hash(config)}


def job_expect(run: GridRun, job: EvalJob, digest: str | None, fingerprint: str) -> dict[str, Any]:
    """What a resumed evaluation record must hold: the job its file name says, of this config,
    computed from these inputs (digest None: its checkpoint is not trained yet, so only the
    data and config parts of `inputs` are checked now)."""
    expect = {
        "method": job.method,
        "noise": job.noise,
        "level": job.level,
        "seed": job.seed,
        "transfers": job.transfers,
        "config": job_config(run.config, job.method, job.noise, job.seed),
    }
    inputs = eval_inputs(run, job, digest, fingerprint)
    if digest is None:
        return {**expect, "inputs.data": inputs["data"], "inputs.config": inputs["config"]}
    return {**expect, "inputs": inputs}


def record_expect(
    run: GridRun, job: EvalJob, digest: str | None, fingerprint: str
) -> dict[str, Any]:
    """`job_expect`, and for a shard its chip range too."""
    expect = job_expect(run, job, digest, fingerprint)
    return expect if job.whole else {**expect, "first_chip": job.first_chip, "chips": job.chips}


_DATA: dict[tuple[str, str], Dataset] = {}
_FINGERPRINTS: dict[str, str] = {}


def load_data(run: GridRun) -> Dataset:
    """The run's dataset on this process's device (`run.settings.device`), loaded once per
    process."""
    config, device = run.config, run.settings.device
    key = (repr(config.dataset.spec()), str(device))
    if key not in _DATA:
        _DATA.clear()  # one dataset at a time: a worker serves one run
        _DATA[key] = config.dataset.load().to(device)
    return _DATA[key]


def fingerprint(run: GridRun) -> str:
    """The fingerprint of the data this process loaded for `run` (computed once)."""
    key = repr(run.config.dataset.spec())
    if key not in _FINGERPRINTS:
        _FINGERPRINTS.clear()
        _FINGERPRINTS[key] = data_fingerprint(run.config.dataset.spec(), load_data(run))
    return _FINGERPRINTS[key]


def load_task(run: GridRun) -> Task:
    """The run's task (`jobs.run_task`: the config's, or the one its data's targets say)."""
    return run_task(run.config, load_data(run))


def remember_data(run: GridRun, data: Dataset, digest: str | None = None) -> None:
    """Make `data` (already loaded by this process) what `load_data` returns for this run,
    moved to its device once; `digest`: its fingerprint, when already computed."""
    config, device = run.config, run.settings.device
    _DATA.clear()
    _DATA[(repr(config.dataset.spec()), str(device))] = data.to(device)
    _FINGERPRINTS.clear()
    if digest is not None:
        _FINGERPRINTS[repr(config.dataset.spec())] = digest


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


def training_record(
    job: TrainJob, meta: dict[str, Any], digest: str, path: str | None
) -> dict[str, Any]:
    """A training's record (results.json `trainings`): what its checkpoint's metadata keeps
    (KEPT), the inputs it was trained from (as the checkpoint names them; none for one from
    before), and the checkpoint it produced or loaded ({'path', 'digest'}). Strict JSON: a
    best validation value that is NaN (no validation split) is null, with a reason."""
    record = {"method": job.method, **{k: meta[k] for k in KEPT if k in meta}}
    validated = any(key.startswith("val_") for row in meta.get("history") or [] for key in row)
    for key in ("best_val", "best_val_accuracy"):
        value = record.get(key)
        if isinstance(value, float) and math.isnan(value):
            record[key] = None
            record[f"{key}_reason"] = (
                NO_VALIDATION if not validated else "the validation metric was not a number"
            )
    record["inputs"] = meta.get("inputs") or {}
    record["checkpoint"] = {"path": path, "digest": digest}
    return strict_json(record)


def run_training(job: TrainJob, run: GridRun) -> dict[str, Any]:
    """Train (or load: pretrained, or resumed) one model, run its analyses; the record
    {'training': ..., 'attacks': [...], 'landscape': ..., 'checkpoint': file or None,
    'digest': the checkpoint digest} (and 'model' with keep_models)."""
    config, folder = run.config, run.folder
    data = load_data(run)
    task = load_task(run)
    ckpt = folder.checkpoint(job.method, job.seed) if folder is not None else None
    given = run.pretrained.get(job.method)
    writes = ckpt if run.write else None
    if given or (run.resume and ckpt is not None and ckpt.is_file()):
        state, meta = load_checkpoint(given or ckpt)
        if not given:  # a checkpoint of this folder must be this (method, seed)'s, of this run
            expect = checkpoint_expect(config, job.method, job.seed, task, fingerprint(run))
            check_checkpoint(ckpt, meta, expect)
        model = model_from_checkpoint(state, meta, run.settings.device)
        digest = checkpoint_digest(state, meta)
        info(f"loaded {given or ckpt}")
    else:
        logs = folder.logs(job.method, job.seed) if writes else None
        model, meta = train_and_save(
            config,
            config.method(job.method),
            data,
            writes,
            noise=config.noise[0].model,
            seed=job.seed,
            task=task,
            settings=run.settings,
            progress=run.progress,
            log=info,
            callbacks=make_loggers(run.loggers, logs) if run.loggers and logs else (),
            inputs={
                "data": fingerprint(run),
                "config": config_hash(train_config(config, job.method, job.seed)),
            },
        )
        digest = checkpoint_digest(model.state_dict(), meta)
    attacks, landscape = [], None
    if run.write:  # the analyses are evaluations: rank 0's alone under torchrun
        trained = train_config(config, job.method, job.seed)
        attacks, landscape = analyse_model(
            config,
            model,
            data,
            job.method,
            job.seed,
            folder,
            run.resume,
            settings=run.settings.replace(task=task),
            provenance=(digest, fingerprint(run), trained),
        )
    file = given or ckpt
    shown = str(Path(given).resolve()) if given else None if ckpt is None else folder.shown(ckpt)
    training = training_record(job, meta, digest, shown)
    if config.cost is not None and run.write:  # energy and latency per inference on tiles
        estimate = estimate_model(model, data.input_shape, config.cost, config.chip)
        training["cost_estimate"] = strict_json(estimate)
    record = {
        "training": training,
        "attacks": attacks,
        "landscape": landscape,
        "checkpoint": None if file is None else str(file),
        "digest": digest,
    }
    return {**record, "model": model} if run.keep_models else record


def run_evaluation(job: EvalJob, needed: dict[str, Any], run: GridRun) -> dict[str, Any]:
    """Evaluate the job's chips under its noise model at its level; the full record (a whole
    job) or a shard record with the per-chip task sums and per-unit counts the merge needs."""
    config, folder = run.config, run.folder
    digest, data_digest = needed["digest"], fingerprint(run)
    path = folder.record(job) if folder is not None else None
    if path is not None and run.resume and path.is_file():
        return folder.read_record(path, record_expect(run, job, digest, data_digest))
    data = load_data(run)
    model = needed.get("model") or load_model(Path(needed["checkpoint"]), run.settings.device)
    noise = job.noise_model
    task = load_task(run)
    settings = run.settings.replace(task=task)
    started = time.perf_counter()
    analog = evaluation_forward(  # with its learned or calibrated ranges, if any
        config.forward,
        model,
        list(chip_params(model, config.chip)),
        data.example(config.forward.calibration_examples) if config.forward else None,
        needed["training"].get("analog_ranges"),
        ir_drop_window(config.forward, noise),
    )
    result = evaluate_chips(
        model,
        data,
        noise,
        transfers=job.chips,
        seed=job.seed,
        noise_label=job.noise,
        settings=settings,
        first_chip=job.first_chip,
        analog=analog,
    )
    clean = clean_metrics(
        model,
        data.x_test,
        data.y_test,
        task,
        settings.eval_batch_size,
        precision=settings.eval_precision,
        seed=job.seed,
    )
    calibrated = None
    if config.calibration is not None:  # every chip also calibrated on its own draw
        calibrated = calibrated_transfers(
            model,
            data,
            noise,
            config.calibration,
            seed=job.seed,
            noise_label=job.noise,
            first_chip=job.first_chip,
            chips=job.chips,
            settings=settings.replace(analog=analog),
            task=task,
        )
    hidden = ("history", "method", "inputs", "checkpoint", "cost_estimate")
    labels = {
        "method_spec": config.method(job.method).method.spec(),
        "training": {k: v for k, v in needed["training"].items() if k not in hidden},
        "config": job_config(run.config, job.method, job.noise, job.seed),
        "inputs": eval_inputs(run, job, digest, data_digest),
        "checkpoint_path": needed["training"]["checkpoint"]["path"],
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
        if calibrated is not None:
            record["calibrated"] = calibrated_summary(calibrated, job, clean, run, seconds)
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
            **(shard_part(calibrated) if calibrated is not None else {}),
            **labels,
        }
    record = strict_json(record)
    if path is not None:
        folder.write_record(path, record)
    return record


SHARED = ("method_spec", "training", "config", "inputs", "checkpoint_path")
"""What every shard of one evaluation holds alike, and its merged record keeps."""


def merge_shards(shards: list[dict[str, Any]], job: EvalJob, run: GridRun) -> dict[str, Any]:
    """The full record of `job`'s evaluation from its shard records (any order): per-chip task
    sums concatenated in chip order, per-unit counts summed, so the record equals the one the
    evaluation gives in a single job (but for its 'seconds', the shards' sum). Shards computed
    from different inputs are refused (NoiseproofError)."""
    shards = sorted(shards, key=lambda shard: shard["first_chip"])
    first = shards[0]
    for shard in shards[1:]:
        if shard.get("inputs") != first.get("inputs"):
            raise NoiseproofError(f"the shards of {job.name} were computed from other inputs")
    sums = [[math.nan if v is None else v for v in row] for s in shards for row in s["chip_sums"]]
    result = TransferResult(
        task=load_task(run),
        sums=torch.tensor(sums, dtype=torch.float64),
        correct_counts=sum(torch.tensor(s["correct_counts"], dtype=torch.int64) for s in shards),
        mask=torch.tensor(first["mask"], dtype=torch.bool) if "mask" in first else None,
    )
    summary = summary_record(
        result,
        job.noise_model,
        noise_label=first["noise"],
        seed=first["seed"],
        clean=first["clean"],
        threshold=run.config.reliability_threshold,
        seconds=sum(s["seconds"] for s in shards),
    )
    labels = {k: first[k] for k in SHARED}
    merged = {"method": first["method"], **summary, **labels}
    calibrated = merged_result(shards, result.task)
    if calibrated is not None:
        seconds = sum(s["seconds"] for s in shards)
        merged["calibrated"] = calibrated_summary(calibrated, job, first["clean"], run, seconds)
    return strict_json(merged)


def calibrated_summary(
    result: TransferResult, job: EvalJob, clean: dict[str, float], run: GridRun, seconds: float
) -> dict[str, Any]:
    """The 'calibrated' part of an evaluation record: the summary of its calibrated chips
    (noiseproof.experiments.calibrated) and the calibration settings."""
    summary = summary_record(
        result,
        job.noise_model,
        noise_label=job.noise,
        seed=job.seed,
        clean=clean,
        threshold=run.config.reliability_threshold,
        seconds=seconds,
    )
    return {**summary, "settings": run.config.calibration.model_dump(mode="json")}


def check_finished(
    run: GridRun, jobs: list[Job], task: Task, data_digest: str, given: dict[str, str]
) -> None:
    """Under --resume, before any work: NoiseproofError (one line, naming the file) unless
    every checkpoint and job record already in the folder is readable, belongs to the job its
    file name says, and was computed from this run's inputs. given: method label -> digest of
    the checkpoint evaluated instead of training it."""
    folder, digests = run.folder, {}
    for job in jobs:
        if isinstance(job, TrainJob):
            ckpt = folder.checkpoint(job.method, job.seed)
            if job.method in given:
                digests[job] = given[job.method]
            elif ckpt.is_file():
                try:
                    state, meta = load_checkpoint(ckpt)
                except NoiseproofError as error:
                    raise NoiseproofError(f"{error}; delete it to train it again") from None
                expect = checkpoint_expect(run.config, job.method, job.seed, task, data_digest)
                check_checkpoint(ckpt, meta, expect)
                digests[job] = checkpoint_digest(state, meta)
            continue
        digest = digests.get(job.training)
        whole = folder.job(job.method, job.noise, job.level, job.seed)
        if whole.is_file():
            folder.read_record(whole, job_expect(run, job, digest, data_digest))
        elif not job.whole and folder.shard(job).is_file():
            folder.read_record(folder.shard(job), record_expect(run, job, digest, data_digest))

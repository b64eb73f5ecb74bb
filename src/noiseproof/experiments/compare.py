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
from pathlib import Path
from typing import Any

import yaml
from torch import nn

from noiseproof.atomic import write_json_atomic, write_text_atomic
from noiseproof.config import ExperimentConfig
from noiseproof.devices import resolve_device
from noiseproof.errors import NoiseproofError
from noiseproof.experiments.analyses import analyse_model, flatness_table, write_analyses
from noiseproof.experiments.jobs import evaluate_job, model_from_checkpoint, train_and_save
from noiseproof.experiments.records import check_record, read_record
from noiseproof.experiments.report import write_report
from noiseproof.experiments.results import summary_rows, text_table, to_csv
from noiseproof.filenames import safe_name
from noiseproof.outputs import locks_output
from noiseproof.progress import progress_bar
from noiseproof.training.checkpoints import check_fits, load_checkpoint


def check_folder(out: Path, config: dict[str, Any], resume: bool) -> None:
    """Refuse to overwrite finished results, or to resume them with another config."""
    saved = out / "config.yaml"
    if resume:
        try:
            previous = yaml.safe_load(saved.read_bytes()) if saved.is_file() else config
        except (yaml.YAMLError, UnicodeDecodeError):
            raise NoiseproofError(
                f"--resume: {saved} is not the YAML this program wrote; use another --out"
            ) from None
        if previous != config:
            raise NoiseproofError(
                f"--resume: the config differs from the one in {saved}; use another --out"
            )
    elif any((out / "jobs").glob("*.json")) or any((out / "checkpoints").glob("*.pt")):
        raise NoiseproofError(
            f"{out} already holds results: pass --resume to continue them or choose another --out"
        )


def checkpoint_path(out: Path, label: str, seed: int) -> Path:
    """Where the model of (method `label`, `seed`) is saved."""
    return out / "checkpoints" / f"{safe_name(label)}-seed{seed}.pt"


def job_path(out: Path, label: str, noise: str, level: float, seed: int) -> Path:
    """Where the record of one evaluation job is saved."""
    name = f"{safe_name(label)}__{safe_name(noise)}__{level:g}__seed{seed}.json"
    return out / "jobs" / name


def checkpoint_expect(label: str, seed: int) -> dict[str, Any]:
    """What the metadata of a resumed checkpoint must hold."""
    return {"label": label, "seed": seed}


def job_expect(
    config: ExperimentConfig, raw: dict[str, Any], label: str, noise: str, level: float, seed: int
) -> dict[str, Any]:
    """What a resumed job record must hold: the job its file name says, of this config."""
    return {
        "method": label,
        "noise": noise,
        "level": level,
        "seed": seed,
        "transfers": config.transfers,
        "config": job_config(raw, label, noise, seed),
    }


def check_finished(
    out: Path, config: ExperimentConfig, raw: dict[str, Any], skip: frozenset[str] = frozenset()
) -> None:
    """Under --resume: NoiseproofError (one line, naming the file) unless every checkpoint and
    job record already in `out` is readable and belongs to its (method, noise, level, seed)."""
    for seed in config.seeds:
        for entry in config.methods:
            ckpt = checkpoint_path(out, entry.label, seed)
            if entry.label not in skip and ckpt.is_file():
                try:
                    _, meta = load_checkpoint(ckpt)
                except NoiseproofError as error:
                    raise NoiseproofError(f"{error}; delete it to train it again") from None
                check_record(ckpt, meta, checkpoint_expect(entry.label, seed))
            for noise_entry in config.noise:
                for level in config.levels_of(noise_entry):
                    path = job_path(out, entry.label, noise_entry.label, level, seed)
                    if path.is_file():
                        expect = job_expect(
                            config, raw, entry.label, noise_entry.label, level, seed
                        )
                        read_record(path, expect)


@locks_output("out", subfolders=("jobs", "checkpoints", "logs/*"))
def run_compare(
    config: ExperimentConfig,
    out: str | Path | None,
    *,
    resume: bool = False,
    pretrained: dict[str, Path] | None = None,
    progress: bool = True,
    log: Callable[[str], None] = print,
    show: Callable[[str], None] | None = None,
    callbacks: Callable[[str, int], Sequence[Any]] | None = None,
    trained: Callable[[str, int, nn.Module], None] | None = None,
) -> dict[str, Any]:
    """Run (or resume) the grid described by `config` into `out`; returns the results.json data.

    out: the output folder, or None to run in memory (nothing written, nothing resumed).
    pretrained: method label -> checkpoint to evaluate instead of training that method.
    log: progress and info lines; show: the results tables (default: `log`);
    callbacks: (method label, seed) -> trainer callbacks for that training (e.g. loggers);
    trained: called with (method label, seed, model) once each model is trained or loaded.
    """
    out = None if out is None else Path(out)
    raw = config.to_dict()
    resume = resume and out is not None
    if out is not None:
        check_folder(out, raw, resume)
    if resume:  # every finished record is ours, or the run stops before doing any work
        check_finished(out, config, raw, skip=frozenset(pretrained or {}))
    started = time.perf_counter()
    data = config.dataset.load()  # before writing anything: a missing data path leaves no trace
    device = resolve_device(config.device)
    for path in (pretrained or {}).values():  # a checkpoint must fit the data, before any forward
        state, meta = load_checkpoint(path)
        check_fits(meta, data.input_shape, data.num_outputs, f"{path}")
        model_from_checkpoint(state, meta)  # its weights fit its model, before anything is written
    if out is not None:
        write_text_atomic(out / "config.yaml", yaml.safe_dump(raw, sort_keys=False))
    log(
        f"dataset {data.name}: {len(data.y_train)} train / {len(data.y_val)} val / "
        f"{len(data.y_test)} test, input {data.input_shape}, {data.num_outputs} outputs; "
        f"device {device}"
    )
    data = data.to(device)  # in-memory splits moved once for every training and evaluation
    train_noise = config.noise[0].model
    records, trainings, attacks, landscapes = [], [], [], []
    n_jobs = (
        len(config.methods)
        * len(config.seeds)
        * sum(len(config.levels_of(n)) for n in config.noise)
    )
    bar = progress_bar(n_jobs, "compare jobs", enabled=progress, unit="job", leave=True)
    try:
        for seed in config.seeds:
            for entry in config.methods:
                ckpt = checkpoint_path(out, entry.label, seed) if out is not None else None
                given = (pretrained or {}).get(entry.label)
                if given or (resume and ckpt.is_file()):
                    state, meta = load_checkpoint(given or ckpt)
                    if not given:  # a checkpoint of this folder must be this (method, seed)'s
                        check_record(ckpt, meta, checkpoint_expect(entry.label, seed))
                    model = model_from_checkpoint(state, meta, device)
                    log(f"loaded {given or ckpt}")
                else:
                    model, meta = train_and_save(
                        config,
                        entry,
                        data,
                        ckpt,
                        noise=train_noise,
                        seed=seed,
                        progress=progress,
                        log=log,
                        callbacks=callbacks(entry.label, seed) if callbacks else (),
                    )
                kept = ("seed", "history", "best_epoch", "best_val_accuracy", "train_seconds")
                training = {k: meta[k] for k in (*kept, "finish") if k in meta}
                trainings.append({"method": entry.label, **training})
                if trained is not None:
                    trained(entry.label, seed, model)
                jobs = out / "jobs" if out is not None else None
                attacked, landscape = analyse_model(
                    config, model, data, entry.label, seed, jobs, resume
                )
                attacks += attacked
                landscapes += [landscape] if landscape else []
                for noise_entry in config.noise:
                    for level in config.levels_of(noise_entry):
                        path = (
                            job_path(out, entry.label, noise_entry.label, level, seed)
                            if out is not None
                            else None
                        )
                        if resume and path.is_file():
                            expect = job_expect(
                                config, raw, entry.label, noise_entry.label, level, seed
                            )
                            record = read_record(path, expect)
                        else:
                            record = {
                                "method": entry.label,
                                **evaluate_job(
                                    model,
                                    data,
                                    noise_entry.model.with_level(level),
                                    transfers=config.transfers,
                                    seed=seed,
                                    noise_label=noise_entry.label,
                                    selection=config.chip,
                                    threshold=config.reliability_threshold,
                                    batch_size=config.eval_batch_size,
                                    precision=config.eval_precision,
                                ),
                                "method_spec": entry.method.spec(),
                                "training": {k: v for k, v in training.items() if k != "history"},
                                "config": job_config(raw, entry.label, noise_entry.label, seed),
                            }
                            if path is not None:
                                write_json_atomic(path, record)
                        records.append(record)
                        bar.update(1)
    finally:
        bar.close()
    wall = time.perf_counter() - started
    results = {"config": raw, "wall_seconds": wall, "jobs": records, "trainings": trainings}
    if config.attack is not None:
        results["attacks"] = attacks
    if config.landscape is not None:
        results["landscapes"] = landscapes
        results["flatness"] = flatness_table(landscapes)
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
    write_analyses(out, attacks, landscapes, show or log)
    for noise, header, rows in summary_rows(records):
        (show or log)(
            f"\naccuracy under {noise} (%: mean ± std (min) over {config.transfers} transfers)"
        )
        (show or log)(text_table(header, rows))
    log(f"\nwrote {out}/results.json, results.csv, report.md, report.html ({wall:.1f} s)")
    return results


def job_config(raw: dict[str, Any], method: str, noise: str, seed: int) -> dict[str, Any]:
    """The slice of the experiment config that one job used (enough to run it again)."""
    keep = ("dataset", "model", "transfers", "train", "chip", "reliability_threshold")
    return {
        **{k: raw[k] for k in keep},
        "method": next(m for m in raw["methods"] if m.get("label", m["name"]) == method),
        "noise": next(n for n in raw["noise"] if n.get("label", n["name"]) == noise),
        "seed": seed,
    }

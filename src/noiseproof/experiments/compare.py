"""`compare`: methods x noise models x levels x seeds as independent jobs, each saved when done.

Layout of the output folder:
  config.yaml                      the validated config (a resumed run must match it)
  checkpoints/<method>-seed<s>.pt  one trained model per (method, seed)
  jobs/<method>__<noise>__<level>__seed<s>.json   one record per evaluation job
  results.json, results.csv, report.md, report.html, *.png   written at the end
An interrupted run started again with resume=True loads finished checkpoints and skips
finished jobs, so only the missing work is done.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml
from tqdm.auto import tqdm

from noiseproof.atomic import write_json_atomic, write_text_atomic
from noiseproof.config import ExperimentConfig
from noiseproof.errors import NoiseproofError
from noiseproof.experiments.analyses import analyse_model, flatness_table, write_analyses
from noiseproof.experiments.jobs import evaluate_job, model_from_checkpoint, train_and_save
from noiseproof.experiments.report import write_report
from noiseproof.experiments.results import summary_rows, text_table, to_csv
from noiseproof.training.checkpoints import load_checkpoint


def safe_name(text: str) -> str:
    """A file-name-safe version of a label or level."""
    return "".join(c if c.isalnum() or c in "-." else "_" for c in text)


def check_folder(out: Path, config: dict[str, Any], resume: bool) -> None:
    """Refuse to overwrite finished results, or to resume them with another config."""
    saved = out / "config.yaml"
    if resume:
        if saved.is_file() and yaml.safe_load(saved.read_text()) != config:
            raise NoiseproofError(
                f"--resume: the config differs from the one in {saved}; use another --out"
            )
    elif any((out / "jobs").glob("*.json")) or any((out / "checkpoints").glob("*.pt")):
        raise NoiseproofError(
            f"{out} already holds results: pass --resume to continue them or choose another --out"
        )


def run_compare(
    config: ExperimentConfig,
    out: str | Path,
    *,
    resume: bool = False,
    pretrained: dict[str, Path] | None = None,
    progress: bool = True,
    log: Callable[[str], None] = print,
) -> dict[str, Any]:
    """Run (or resume) the grid described by `config` into `out`; returns the results.json data.

    pretrained: method label -> checkpoint to evaluate instead of training that method.
    """
    out = Path(out)
    raw = config.to_dict()
    check_folder(out, raw, resume)
    started = time.perf_counter()
    data = config.dataset.load()  # before writing anything: a missing data path leaves no trace
    write_text_atomic(out / "config.yaml", yaml.safe_dump(raw, sort_keys=False))
    log(
        f"dataset {data.name}: {len(data.x_train)} train / {len(data.x_val)} val / "
        f"{len(data.x_test)} test, input {data.input_shape}, {data.num_outputs} outputs"
    )
    train_noise = config.noise[0].model
    records, trainings, attacks, landscapes = [], [], [], []
    n_jobs = (
        len(config.methods)
        * len(config.seeds)
        * sum(len(config.levels_of(n)) for n in config.noise)
    )
    bar = tqdm(total=n_jobs, desc="compare jobs", disable=not progress, unit="job")
    try:
        for seed in config.seeds:
            for entry in config.methods:
                ckpt = out / "checkpoints" / f"{safe_name(entry.label)}-seed{seed}.pt"
                given = (pretrained or {}).get(entry.label)
                if given or (resume and ckpt.is_file()):
                    state, meta = load_checkpoint(given or ckpt)
                    model = model_from_checkpoint(state, meta)
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
                    )
                kept = ("seed", "history", "best_epoch", "best_val_accuracy", "train_seconds")
                training = {k: meta[k] for k in (*kept, "finish") if k in meta}
                trainings.append({"method": entry.label, **training})
                attacked, landscape = analyse_model(
                    config, model, data, entry.label, seed, out / "jobs", resume
                )
                attacks += attacked
                landscapes += [landscape] if landscape else []
                for noise_entry in config.noise:
                    for level in config.levels_of(noise_entry):
                        path = (
                            out
                            / "jobs"
                            / (
                                f"{safe_name(entry.label)}__{safe_name(noise_entry.label)}__"
                                f"{level:g}__seed{seed}.json"
                            )
                        )
                        if resume and path.is_file():
                            record = json.loads(path.read_text())
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
                                ),
                                "method_spec": entry.method.spec(),
                                "training": {k: v for k, v in training.items() if k != "history"},
                                "config": job_config(raw, entry.label, noise_entry.label, seed),
                            }
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
    write_json_atomic(out / "results.json", results)
    write_text_atomic(out / "results.csv", to_csv(records))
    summary = (
        f"{data.name} / {config.model.registered_name}: {len(config.methods)} methods x "
        f"{len(config.seeds)} seed(s), {config.transfers} transfers per level; "
        f"wall time {wall:.1f} s (this run)"
    )
    write_report(out, records, trainings, raw, summary)
    write_analyses(out, attacks, landscapes, log)
    for noise, header, rows in summary_rows(records):
        log(f"\naccuracy under {noise} (%: mean ± std (min) over {config.transfers} transfers)")
        log(text_table(header, rows))
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

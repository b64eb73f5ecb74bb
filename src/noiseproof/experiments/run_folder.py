"""The output folder of a run as one object: its layout, its lock, its checks and its records.

Layout:
  config.yaml                       the validated config (a resumed run must match it)
  checkpoints/<method>-seed<s>.pt   one trained model per (method, seed)
  jobs/<method>__<noise>__<level>__seed<s>.json   one record per evaluation (all its chips)
  jobs/shards/<that name>__chips<a>-<b>.json      one record per shard of an evaluation's chips
  jobs/<attack|landscape>__<method>__seed<s>.json the optional analyses (analyses.py)
  logs/<method>-seed<s>/            per-epoch training logs (--log)
  results.json, results.csv, report.md, report.html and the plots (PLOTS), written at the end

Consent: a folder that holds any of these (`outputs`) is refused unless the run resumes it
(`resume`) or replaces it (`overwrite`). Overwriting moves every old output into a hidden
folder `.noiseproof-replaced-*` (results and reports first, config.yaml last), then deletes
it, all before the new run writes anything: a crash in between leaves part of the old run
(never a mixture of old and new files), and the next run that takes the lock deletes the
hidden folder. `--resume` on a folder with no earlier run starts a fresh one and says so.

While a run writes the folder it holds its lock (noiseproof.outputs: `.noiseproof.lock`; the
temporary files a killed run left are removed on taking it). Records are strict JSON written
atomically (noiseproof.experiments.records); reading one checks it.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from noiseproof.atomic import write_text_atomic
from noiseproof.config import RESULT_FREE_KEYS
from noiseproof.errors import NoiseproofError
from noiseproof.experiments import records
from noiseproof.experiments.plan import EvalJob
from noiseproof.experiments.provenance import short
from noiseproof.filenames import safe_name
from noiseproof.launch import is_main_process
from noiseproof.outputs import output_folder

SUBFOLDERS = ("jobs", "jobs/shards", "checkpoints", "logs/*")
"""Where a run writes (cleaned of stale temporary files when the lock is taken)."""

RESULT_FILES = ("results.json", "results.csv", "report.md", "report.html")
PLOTS = (
    "accuracy_*.png",
    "reliability_*.png",
    "histogram_*.png",
    "pareto_*.png",
    "training_curves.png",
    "attack.png",
    "landscape.png",
)
"""The plots the report writes (noiseproof.experiments.report, analyses): outputs of the run."""
RECORD_GLOBS = ("jobs/shards/*.json", "jobs/*.json", "checkpoints/*.pt", "logs/*")
REPLACED = ".noiseproof-replaced-"
"""Name prefix of the hidden folder an --overwrite moves the old outputs into."""


@dataclass(frozen=True)
class RunFolder:
    """One run's output folder (see the module docstring). Frozen and picklable: jobs on Ray
    workers write their records through it."""

    path: Path

    # -- layout ---------------------------------------------------------------------------

    @property
    def config_file(self) -> Path:
        """config.yaml: the validated config of the run."""
        return self.path / "config.yaml"

    @property
    def results_file(self) -> Path:
        """results.json: every record, assembled at the end."""
        return self.path / "results.json"

    @property
    def jobs(self) -> Path:
        """The folder of the job records."""
        return self.path / "jobs"

    def checkpoint(self, label: str, seed: int) -> Path:
        """Where the model of (method `label`, `seed`) is saved."""
        return self.path / "checkpoints" / f"{safe_name(label)}-seed{seed}.pt"

    def job(self, label: str, noise: str, level: float, seed: int) -> Path:
        """Where the record of one evaluation (all its chips) is saved."""
        return self.jobs / f"{safe_name(label)}__{safe_name(noise)}__{level:g}__seed{seed}.json"

    def shard(self, job: EvalJob) -> Path:
        """Where the record of one shard of an evaluation's chips is saved."""
        stem = self.job(job.method, job.noise, job.level, job.seed).stem
        last = job.first_chip + job.chips
        return self.jobs / "shards" / f"{stem}__chips{job.first_chip}-{last}.json"

    def record(self, job: EvalJob) -> Path:
        """Where `job` saves its record: the evaluation's, or its shard's."""
        if not job.whole:
            return self.shard(job)
        return self.job(job.method, job.noise, job.level, job.seed)

    def analysis(self, kind: str, label: str, seed: int) -> Path:
        """Where the `kind` analysis ('attack' or 'landscape') of (method `label`, `seed`) is
        saved."""
        return self.jobs / f"{kind}__{safe_name(label)}__seed{seed}.json"

    def logs(self, label: str, seed: int) -> Path:
        """The folder of the per-epoch logs of (method `label`, `seed`)."""
        return self.path / "logs" / safe_name(f"{label}-seed{seed}")

    def shown(self, path: str | Path) -> str:
        """`path` as records name it: relative to the folder when inside it (so two copies of
        a run hold equal records), else as given."""
        try:
            return Path(path).relative_to(self.path).as_posix()
        except ValueError:
            return str(path)

    # -- lock -----------------------------------------------------------------------------

    @contextmanager
    def locked(self) -> Iterator[RunFolder]:
        """Hold the folder's lock (created if needed; noiseproof.outputs) while the block
        writes it; stale temporary files and the hidden folder of an interrupted --overwrite
        are removed first. Under torchrun only rank 0 (the one that writes) takes it."""
        if not is_main_process():
            yield self
            return
        with output_folder(self.path, SUBFOLDERS):
            for stale in self.path.glob(f"{REPLACED}*"):
                shutil.rmtree(stale, ignore_errors=True)
            yield self

    # -- what is there --------------------------------------------------------------------

    def outputs(self) -> list[Path]:
        """The noiseproof outputs in the folder, results and reports first, config.yaml last
        (the order an --overwrite removes them in)."""
        found = [self.path / name for name in RESULT_FILES]
        found += [p for pattern in PLOTS for p in sorted(self.path.glob(pattern))]
        found += [p for pattern in RECORD_GLOBS for p in sorted(self.path.glob(pattern))]
        found.append(self.config_file)
        return [p for p in found if p.is_file() or (p.parent.name == "logs" and p.is_dir())]

    def named(self, paths: list[Path], most: int = 3) -> str:
        """'results.json, jobs/a.json and 5 more' for a message."""
        names = [self.shown(p) for p in paths[:most]]
        more = f" and {len(paths) - most} more" if len(paths) > most else ""
        return ", ".join(names) + more

    def saved_config(self) -> dict[str, Any] | None:
        """The config.yaml of an earlier run (None if there is none); NoiseproofError if it
        is not the YAML this program writes."""
        if not self.config_file.is_file():
            return None
        try:
            saved = yaml.safe_load(self.config_file.read_bytes())
        except (yaml.YAMLError, UnicodeDecodeError):
            saved = None
        if not isinstance(saved, dict):
            raise NoiseproofError(
                f"{self.config_file} is not the YAML this program writes: use another --out "
                "or --overwrite"
            )
        return saved

    def evaluation_records(self) -> Iterator[tuple[Path, dict[str, Any]]]:
        """Every readable evaluation record in the folder (jobs/, jobs/shards/ and the jobs of
        results.json), unchecked: for telling what the folder evaluated. Unreadable files are
        skipped here (a resumed run refuses them when it reads them)."""
        paths = [*sorted(self.jobs.glob("*.json")), *sorted(self.jobs.glob("shards/*.json"))]
        for path in [*paths, self.results_file]:
            try:
                value: Any = records.read_json(path) if path.is_file() else None
            except NoiseproofError:
                continue
            results = path == self.results_file and isinstance(value, dict)
            items = value.get("jobs") if results else [value]
            for item in items if isinstance(items, list) else []:
                if isinstance(item, dict) and "noise" in item:
                    yield path, item

    # -- checks before a run starts -------------------------------------------------------

    def start(
        self,
        raw: dict[str, Any],
        *,
        resume: bool,
        overwrite: bool,
        given: dict[str, tuple[str, str]] | None = None,
    ) -> bool:
        """Check the folder before anything is computed; True when an earlier run is resumed.

        raw: the run's config (as config.yaml holds it); given: method label -> (checkpoint
        path, digest) of the models evaluated without training them (`evaluate`). Refused in
        one line: a folder holding the evaluation of another checkpoint (naming both, even
        under --resume); any output without --resume or --overwrite; under --resume a
        config.yaml that differs (but for RESULT_FREE_KEYS) from `raw`.
        """
        if resume and overwrite:
            raise NoiseproofError("--resume and --overwrite exclude each other: choose one")
        if overwrite:
            return False
        labels = [m.get("label", m.get("name")) for m in raw.get("methods", [])]
        self.refuse_other_checkpoints(given or {}, labels)
        present = self.outputs()
        if not present:
            return False
        if not resume:
            raise NoiseproofError(
                f"{self.path} already holds results of an earlier run ({self.named(present)}): "
                "pass --resume to continue it, --overwrite to replace it, or choose another --out"
            )
        saved = self.saved_config()
        if saved is not None and _results_part(saved) != _results_part(raw):
            key = next(
                k
                for k in sorted({*saved, *raw} - set(RESULT_FREE_KEYS))
                if saved.get(k) != raw.get(k)
            )
            raise NoiseproofError(
                f"--resume: the config differs from the one in {self.config_file} (key "
                f"{key!r}): use the same config, another --out, or --overwrite"
            )
        return True

    def refuse_other_checkpoints(
        self, given: dict[str, tuple[str, str]], labels: list[str]
    ) -> None:
        """NoiseproofError naming both checkpoints when an evaluation record in the folder is
        of another checkpoint than the one given for its method label. When the run evaluates
        one given checkpoint and nothing else (`evaluate`), a record of any label counts."""
        only: tuple[str, str] | None = None
        if len(given) == 1 and set(labels) == set(given):
            only = next(iter(given.values()))
        for path, record in self.evaluation_records():
            mine = given.get(record.get("method", ""), only)
            theirs = (record.get("inputs") or {}).get("checkpoint")
            if mine is None or theirs == mine[1]:
                continue
            other = (
                f"checkpoint {record.get('checkpoint_path')} ({short(theirs)})"
                if theirs
                else "a checkpoint its records do not name"
            )
            raise NoiseproofError(
                f"{self.path} holds the evaluation of {other}, not of {mine[0]} "
                f"({short(mine[1])}) (seen in {self.shown(path)}): choose another --out, or "
                "pass --overwrite to replace it"
            )

    # -- writing --------------------------------------------------------------------------

    def clear(self) -> list[Path]:
        """Remove every noiseproof output (--overwrite): moved into a hidden folder in the
        order of `outputs`, which is then deleted (see the module docstring); returns what was
        removed. Call it holding the lock, after the new run has validated its inputs."""
        present = self.outputs()
        if not present:
            return []
        trash = self.path / f"{REPLACED}{secrets.token_hex(4)}"
        trash.mkdir()
        for path in present:
            target = trash / path.relative_to(self.path)
            target.parent.mkdir(parents=True, exist_ok=True)
            os.replace(path, target)
        shutil.rmtree(trash)
        for sub in ("jobs/shards", "jobs", "checkpoints", "logs"):
            with contextlib.suppress(OSError):  # left empty: as a fresh run finds it
                (self.path / sub).rmdir()
        return present

    def write_config(self, raw: dict[str, Any]) -> Path:
        """Write config.yaml (atomically)."""
        return write_text_atomic(self.config_file, yaml.safe_dump(raw, sort_keys=False))

    def write_text(self, name: str, text: str) -> Path:
        """Write a file of the folder (e.g. results.csv) atomically."""
        return write_text_atomic(self.path / name, text)

    def write_record(self, path: Path, record: Any) -> Path:
        """Write a record (or results.json) as strict JSON, atomically."""
        return write_text_atomic(path, records.dumps(record))

    def read_record(self, path: Path, expect: dict[str, Any]) -> Any:
        """The record at `path`, checked to hold every `expect` value (records.read_record)."""
        return records.read_record(path, expect)


def _results_part(raw: dict[str, Any]) -> dict[str, Any]:
    """The config without the keys that never change results (RESULT_FREE_KEYS)."""
    return {k: v for k, v in raw.items() if k not in RESULT_FREE_KEYS}

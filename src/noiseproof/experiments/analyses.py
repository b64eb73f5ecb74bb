"""Optional per-model analyses of a `compare` run: targeted attack and loss landscape.

Asked for by the config keys `attack:` (noiseproof.evaluation.attack.AttackConfig) and
`landscape:` (noiseproof.evaluation.landscape.LandscapeConfig). Each (method, seed) model gets
one record per analysis, saved as jobs/attack__<method>__seed<s>.json and
jobs/landscape__<method>__seed<s>.json so a resumed run skips finished ones. Every record
names its `inputs` (noiseproof.experiments.provenance.analysis_inputs: the checkpoint's
digest, the data's fingerprint, the hash of the analysis settings with the training's config
slice); a saved record whose inputs differ is refused, never reused. results.json gets
the lists `attacks` and `landscapes` and a `flatness` table; report.md/html get a section each.
"""

from __future__ import annotations

import base64
import html
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from torch import nn

from noiseproof.atomic import write_text_atomic
from noiseproof.data.base import Dataset
from noiseproof.evaluation.attack import attack_plot, attack_rows, targeted_attack
from noiseproof.evaluation.landscape import flatness_rows, landscape_plot, loss_landscape
from noiseproof.experiments.provenance import analysis_inputs
from noiseproof.experiments.records import dumps, read_record, strict_json
from noiseproof.experiments.results import markdown_table, text_table

if TYPE_CHECKING:
    from noiseproof.experiments.run_folder import RunFolder
    from noiseproof.settings import RunSettings


def _cached(
    path: Path | None,
    resume: bool,
    compute: Callable[[], Any],
    expect: dict[str, Any] | None = None,
) -> Any:
    """The record at `path` when resuming and it exists (checked to hold `expect`), else
    `compute()` as strict JSON (records.strict_json) saved there atomically (kept in memory
    only when `path` is None)."""
    if path is not None and resume and path.is_file():
        return read_record(path, expect or {})
    value = strict_json(compute())
    if path is not None:
        write_text_atomic(path, dumps(value))
    return value


def analyse_model(
    config: Any,
    model: nn.Module,
    data: Dataset,
    label: str,
    seed: int,
    folder: RunFolder | None,
    resume: bool,
    *,
    settings: RunSettings,
    provenance: tuple[str, str, dict[str, Any]],
) -> tuple[list[dict[str, Any]], dict[str, Any] | None]:
    """(attack records, landscape record or None) for one trained model, as the config asks,
    with the run's `settings` (chip selection, evaluation precision, task: None inferred from
    the test targets); each record saved where `folder` (RunFolder.analysis) says, and reused
    under `resume` (None: kept in memory).

    provenance: (checkpoint digest, data fingerprint, the training's config slice): each
    record names its `inputs` from them, and a saved one is reused only with the same."""
    digest, fingerprint, trained = provenance
    attacks: list[dict[str, Any]] = []
    landscape = None
    if config.attack is not None:
        asked = {"attack": config.attack.model_dump(mode="json"), "training": trained}
        asked["eval_precision"] = settings.eval_precision
        inputs = analysis_inputs(digest, fingerprint, {**asked, "seed": seed})
        attacks = _cached(
            folder.analysis("attack", label, seed) if folder is not None else None,
            resume,
            expect={"method": label, "seed": seed, "inputs": inputs},
            compute=lambda: [
                {"method": label, "seed": seed, "inputs": inputs, **record}
                for record in targeted_attack(
                    model,
                    data.x_test,
                    data.y_test,
                    config.attack,
                    generator=torch.Generator().manual_seed(seed),
                    selection=settings.selection,
                    precision=settings.eval_precision,
                    task=settings.task,
                )
            ],
        )
    if config.landscape is not None:
        asked = {"landscape": config.landscape.model_dump(mode="json"), "training": trained}
        asked["eval_precision"] = settings.eval_precision
        shape = analysis_inputs(digest, fingerprint, {**asked, "seed": seed})
        landscape = _cached(
            folder.analysis("landscape", label, seed) if folder is not None else None,
            resume,
            expect={"method": label, "seed": seed, "inputs": shape},
            compute=lambda: {
                "method": label,
                "seed": seed,
                "inputs": shape,
                **loss_landscape(
                    model,
                    data.x_test,
                    data.y_test,
                    config.landscape,
                    generator=torch.Generator().manual_seed(seed),
                    selection=settings.selection,
                    precision=settings.eval_precision,
                    task=settings.task,
                ),
            },
        )
    return attacks, landscape


def flatness_table(landscapes: list[dict[str, Any]]) -> dict[str, float]:
    """Method -> flatness (mean over seeds of the mean loss rise at +-flatness_alpha)."""
    by_method: dict[str, list[float]] = {}
    for record in landscapes:
        by_method.setdefault(record["method"], []).append(record["flatness"])
    return {method: sum(v) / len(v) for method, v in by_method.items()}


def write_analyses(
    out: Path,
    attacks: list[dict[str, Any]],
    landscapes: list[dict[str, Any]],
    log: Callable[[str], None] = print,
) -> None:
    """Plots, console tables and a section appended to report.md and report.html."""
    sections = []  # (title, console heading, header, rows, png)
    if attacks:
        png = attack_plot(attacks, out / "attack.png")
        sections.append(
            (
                "Targeted parameter attack",
                "targeted parameter attack vs random mismatch of the same zeta",
                *attack_rows(attacks),
                png,
            )
        )
    if landscapes:
        first_seed: dict[str, dict[str, Any]] = {}
        for record in landscapes:
            first_seed.setdefault(record["method"], record)
        png = landscape_plot(first_seed, out / "landscape.png")
        table = flatness_rows({f"{r['method']} seed {r['seed']}": r for r in landscapes})
        heading = "loss landscape: mean loss rise at +-alpha along random relative directions"
        sections.append(("Loss landscape (flatness)", heading, *table, png))
    md, page = [], []
    for title, heading, header, rows, png in sections:
        log(f"\n{heading}")
        log(text_table(header, rows))
        md += [f"\n## {title}\n", markdown_table(header, rows), f"\n![]({png.name})\n"]
        page.append(_html_section(title, header, rows, png))
    report_md, report_html = out / "report.md", out / "report.html"
    if md and report_md.is_file():
        write_text_atomic(report_md, report_md.read_text() + "\n".join(md))
    if page and report_html.is_file():
        text = report_html.read_text()
        cut = text.rfind("</body>")
        cut = len(text) if cut < 0 else cut
        write_text_atomic(report_html, text[:cut] + "\n".join(page) + "\n" + text[cut:])


def _html_section(title: str, header: list[str], rows: list[list[str]], png: Path) -> str:
    cells = "".join(f"<th>{html.escape(h)}</th>" for h in header)
    body = "".join(
        "<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in row) + "</tr>" for row in rows
    )
    image = base64.b64encode(png.read_bytes()).decode()
    return (
        f"<h2>{html.escape(title)}</h2>\n<table><tr>{cells}</tr>{body}</table>\n"
        f'<img alt="{html.escape(title)}" src="data:image/png;base64,{image}">'
    )

"""report.md and a self-contained report.html (plots embedded) for a finished grid."""

from __future__ import annotations

import base64
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import jinja2
import yaml

from noiseproof.atomic import write_text_atomic
from noiseproof.experiments.decision import verdict_rows
from noiseproof.experiments.plots import (
    accuracy_plot,
    reliability_histogram_plot,
    reliability_plot,
)
from noiseproof.experiments.results import (
    cells_note,
    grouped,
    markdown_table,
    mean_over_seeds,
    metric_label,
    primary_metric,
    show,
    summary_rows,
)

_templates = jinja2.Environment(
    loader=jinja2.PackageLoader("noiseproof.experiments", "templates"),
    autoescape=jinja2.select_autoescape(["html"]),
    keep_trailing_newline=True,
)


def reliability_rows(
    records: Sequence[dict[str, Any]], noise: str
) -> tuple[list[str], list[list[str]]]:
    """Header and rows of reliability share (%) per method and level for one noise model."""
    by_method = grouped(records)[noise]
    levels = sorted({lv for by_level in by_method.values() for lv in by_level})
    header = ["method", *[f"{noise}={lv:g}" for lv in levels]]
    rows = [
        [
            method,
            *[
                f"{100 * mean_over_seeds(by_level[lv], 'reliability', 'share'):.1f}"
                if lv in by_level
                else "-"
                for lv in levels
            ],
        ]
        for method, by_level in by_method.items()
    ]
    return header, rows


def training_rows(trainings: Sequence[dict[str, Any]]) -> tuple[list[str], list[list[str]]]:
    """Header and rows summarising each trained model: epochs, best epoch, validation value of
    the primary metric (accuracy in %), time."""
    name = trainings[0].get("val_metric", "accuracy") if trainings else "accuracy"
    shown = "best val acc (%)" if name == "accuracy" else f"best val {metric_label(name)}"
    header = ["method", "seed", "epochs", "best epoch", shown, "train time (s)"]
    rows = [
        [
            t["method"],
            str(t["seed"]),
            str(len(t["history"])),
            str(t["best_epoch"]),
            show(t.get("best_val", t.get("best_val_accuracy")), name),
            f"{t['train_seconds']:.1f}",
        ]
        for t in trainings
    ]
    return header, rows


def write_report(
    out: Path,
    records: Sequence[dict[str, Any]],
    trainings: Sequence[dict[str, Any]],
    config: dict[str, Any],
    summary: str,
    decided: Sequence[dict[str, Any]] = (),
) -> list[Path]:
    """Write the plots, report.md and report.html into `out`; returns the written paths.
    `decided`: the run's chip-paired comparisons (noiseproof.experiments.decision), shown per
    noise model as the best method per level and those indistinguishable from it."""
    tables, written = [], []
    for noise, acc_header, acc_rows in summary_rows(records):
        slug = "".join(c if c.isalnum() or c in "-_." else "_" for c in noise)
        acc_png = accuracy_plot(records, noise, out / f"accuracy_{slug}.png")
        rel_png = reliability_plot(records, noise, out / f"reliability_{slug}.png")
        hist_png = reliability_histogram_plot(records, noise, out / f"histogram_{slug}.png")
        written += [acc_png, rel_png, hist_png]
        rel_header, rel_rows = reliability_rows(records, noise)
        verdict_header, verdicts = verdict_rows(decided, noise)
        tables.append(
            {
                "noise": noise,
                "metric": metric_label(
                    primary_metric(next(r for r in records if r["noise"] == noise))
                ),
                "accuracy_header": acc_header,
                "accuracy_rows": acc_rows,
                "accuracy_md": markdown_table(acc_header, acc_rows),
                "reliability_header": rel_header,
                "reliability_rows": rel_rows,
                "reliability_md": markdown_table(rel_header, rel_rows),
                "verdict_header": verdict_header,
                "verdict_rows": verdicts,
                "verdict_md": markdown_table(verdict_header, verdicts) if verdicts else "",
                "accuracy_png": acc_png.name,
                "reliability_png": rel_png.name,
                "accuracy_b64": base64.b64encode(acc_png.read_bytes()).decode(),
                "reliability_b64": base64.b64encode(rel_png.read_bytes()).decode(),
                "histogram_png": hist_png.name,
                "histogram_b64": base64.b64encode(hist_png.read_bytes()).decode(),
            }
        )
    train_header, train_rows = training_rows(trainings)
    context = {
        "summary": summary,
        "note": cells_note(records, config["transfers"], config["reliability_threshold"]),
        "tables": tables,
        "transfers": config["transfers"],
        "threshold": config["reliability_threshold"],
        "training_md": markdown_table(train_header, train_rows),
        "training_header": train_header,
        "training_rows": train_rows,
        "config_yaml": yaml.safe_dump(config, sort_keys=False),
    }
    for name in ("report.md", "report.html"):
        text = _templates.get_template(f"{name}.j2").render(**context)
        written.append(write_text_atomic(out / name, text))
    return written

"""report.md and a self-contained report.html (plots embedded) for a finished grid: a summary
first (per noise model the best method per level with its interval, what `recommend` names,
the training cost per method), then per noise model the marked tables, the plots and the
Pareto fronts, then the training curves and the configuration."""

from __future__ import annotations

import base64
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import jinja2
import yaml

from noiseproof.atomic import write_text_atomic
from noiseproof.experiments.decision import pareto
from noiseproof.experiments.pareto_plot import pareto_plot
from noiseproof.experiments.plots import (
    accuracy_plot,
    reliability_histogram_plot,
    reliability_plot,
)
from noiseproof.experiments.report_summary import cost_rows, decision_rows
from noiseproof.experiments.report_tables import BEST, TIED, fitted, marked, pareto_rows
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
from noiseproof.experiments.training_plot import training_curves_plot

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


def figure(path: Path) -> dict[str, str]:
    """A written plot as the templates use it: its file name and its PNG in base64."""
    return {"png": path.name, "b64": base64.b64encode(path.read_bytes()).decode()}


def table(header: list[str], rows: list[list[str]], text: bool = False) -> dict[str, Any]:
    """A table as the templates use it: header, rows, its markdown text and whether its cells
    are words (left-aligned in HTML) rather than numbers."""
    md = markdown_table(header, rows) if rows else ""
    return {"header": header, "rows": rows, "md": md, "text": text}


def write_report(
    out: Path,
    records: Sequence[dict[str, Any]],
    trainings: Sequence[dict[str, Any]],
    config: dict[str, Any],
    summary: str,
    decided: Sequence[dict[str, Any]] = (),
) -> list[Path]:
    """Write the plots, report.md and report.html into `out`; returns the written paths.
    `decided`: the run's chip-paired comparisons (noiseproof.experiments.decision): the report
    opens with them per noise model (best per level with its interval, those indistinguishable
    from it, what `recommend` names) and the training cost per method, marks the best and the
    indistinguishable cells of the tables and draws and lists the Pareto fronts."""
    confidence = config.get("confidence", 0.95)
    fronts = pareto(decided)
    sections: list[dict[str, Any]] = []
    for noise, acc_header, acc_rows in summary_rows(records):
        slug = "".join(c if c.isalnum() or c in "-_." else "_" for c in noise)
        plots = {
            "accuracy": accuracy_plot(records, noise, out / f"accuracy_{slug}.png"),
            "reliability": reliability_plot(records, noise, out / f"reliability_{slug}.png"),
            "histogram": reliability_histogram_plot(records, noise, out / f"histogram_{slug}.png"),
        }
        if any(c["noise"] == noise for c in decided):
            plots["pareto"] = pareto_plot(decided, noise, out / f"pareto_{slug}.png")
            decision = table(*decision_rows(records, decided, noise), text=True)
        else:
            decision = table([], [])
        sections.append(
            {
                "noise": noise,
                "metric": metric_label(
                    primary_metric(next(r for r in records if r["noise"] == noise))
                ),
                "decision": decision,
                "accuracy": table(
                    *fitted(
                        acc_header,
                        marked(acc_header, acc_rows, decided, noise),
                        f"{noise} level",
                        f"{noise}=",
                    )
                ),
                "reliability": table(
                    *fitted(*reliability_rows(records, noise), f"{noise} level", f"{noise}=")
                ),
                "pareto": table(*pareto_rows(fronts, noise), text=True),
                "figures": {name: figure(path) for name, path in plots.items()},
            }
        )
    written = [out / f["png"] for s in sections for f in s["figures"].values()]
    curves = None
    if any(t.get("history") for t in trainings):
        curves = figure(training_curves_plot(trainings, out / "training_curves.png"))
        written.append(out / curves["png"])
    context = {
        "summary": summary,
        "note": cells_note(records, config["transfers"], config["reliability_threshold"]),
        "sections": sections,
        "confidence": f"{100 * confidence:g}",
        "best_mark": BEST,
        "tied_mark": TIED,
        "transfers": config["transfers"],
        "threshold": config["reliability_threshold"],
        "cost": table(*cost_rows(trainings)),
        "training": table(*training_rows(trainings)),
        "curves": curves,
        "config_yaml": yaml.safe_dump(config, sort_keys=False),
    }
    for name in ("report.md", "report.html"):
        text = _templates.get_template(f"{name}.j2").render(**context)
        written.append(write_text_atomic(out / name, text))
    return written

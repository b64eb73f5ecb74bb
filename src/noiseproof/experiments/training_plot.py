"""Training curves of a compare run: per epoch, each training's loss and its validation value
of the primary metric (the `history` its training record keeps), one colour per method.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from noiseproof.experiments.results import is_percent, metric_label
from noiseproof.plotting import pyplot, save_figure

plt = pyplot()


def training_curves_plot(trainings: Sequence[dict[str, Any]], path: Path) -> Path:
    """Two panels, training loss and validation metric vs epoch: a line per (method, seed) in
    the method's colour; the noisy validation (train.select: noisy) dashed where recorded."""
    name = trainings[0].get("val_metric", "accuracy")
    scale = 100 if is_percent(name) else 1
    methods = list(dict.fromkeys(t["method"] for t in trainings))
    figure, (loss_axis, val_axis) = plt.subplots(1, 2, figsize=(10.0, 3.8))
    labelled: set[str] = set()
    for training in trainings:
        method, history = training["method"], training["history"]
        colour, epochs = f"C{methods.index(method) % 10}", [row["epoch"] for row in history]
        label = None if method in labelled else method
        labelled.add(method)
        loss = [row["loss"] for row in history]
        loss_axis.plot(epochs, loss, marker=".", color=colour, label=label)
        for column, style in ((f"val_{name}", "-"), (f"val_noisy_{name}", "--")):
            if history and all(column in row for row in history):
                values = [scale * row[column] for row in history]
                val_axis.plot(epochs, values, style, marker=".", color=colour)
    loss_axis.set_xlabel("epoch")
    loss_axis.set_ylabel("training loss")
    loss_axis.set_title("Training loss per epoch")
    loss_axis.legend()
    val_axis.set_xlabel("epoch")
    val_axis.set_ylabel(f"validation {metric_label(name)}")
    val_axis.set_title("Validation per epoch (dashed: on noisy chips)")
    for axis in (loss_axis, val_axis):
        axis.grid(alpha=0.3)
        axis.xaxis.get_major_locator().set_params(integer=True)
    figure.tight_layout()
    return save_figure(figure, path)

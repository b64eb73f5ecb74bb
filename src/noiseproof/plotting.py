"""Figures written to files: matplotlib with its file-only backend, and an atomic PNG save.

Shared by the experiment plots (noiseproof.experiments.plots) and the evaluation plots
(attack, landscape). matplotlib is imported on the first figure, not with this module: it
costs about half a second and most library uses draw nothing.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from noiseproof.atomic import write_atomic

if TYPE_CHECKING:
    from matplotlib.figure import Figure


def pyplot() -> Any:
    """matplotlib.pyplot on the non-interactive Agg backend (set once, before pyplot loads)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def save_figure(figure: Figure, path: str | Path) -> Path:
    """Write a figure as PNG atomically and close it."""
    path = Path(path)
    write_atomic(path, lambda handle: figure.savefig(handle, format="png", dpi=120))
    pyplot().close(figure)
    return path

"""Trainer callbacks: hooks called by `train(..., callbacks=[...])`, and two built-in loggers.

A callback is any object with some of these methods (missing ones are skipped):

    on_train_begin(model, config)        before the first epoch
    on_epoch_end(epoch, row)             after each epoch; row is the epoch's history entry
                                         (epoch, loss terms, lr, val_accuracy..., seconds)
    on_train_end(result)                 after training (also when it raised: the TrainResult
                                         then holds the epochs finished so far)

`Callback` is a base class with all three doing nothing. `CSVLogger` writes the rows to a CSV
file as they come; `TensorBoardLogger` writes them as scalars (needs the `tensorboard` extra:
`pip install noiseproof[tensorboard]`).
"""

from __future__ import annotations

import csv
import importlib.util
import io
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

from noiseproof.atomic import write_text_atomic
from noiseproof.errors import NoiseproofError

HOOKS = ("on_train_begin", "on_epoch_end", "on_train_end")


class Callback:
    """Base class: override the hooks you need."""

    def on_train_begin(self, model: Any, config: Any) -> None:
        """Called once before the first epoch with the model and its TrainConfig."""

    def on_epoch_end(self, epoch: int, row: dict[str, float]) -> None:
        """Called after each epoch with its number (from 1) and its history row."""

    def on_train_end(self, result: Any) -> None:
        """Called once at the end with the TrainResult (also when training raised)."""


def check_callbacks(callbacks: Iterable[Any] | None) -> list[Any]:
    """The callbacks as a list; TypeError if one has none of the hooks."""
    if callbacks is None:
        return []
    if isinstance(callbacks, str | bytes) or not isinstance(callbacks, Iterable):
        raise TypeError(f"callbacks must be a list of callbacks, got {type(callbacks).__name__}")
    checked = list(callbacks)
    for callback in checked:
        if not any(callable(getattr(callback, hook, None)) for hook in HOOKS):
            raise TypeError(f"callbacks: {callback!r} has none of the hooks {', '.join(HOOKS)}")
    return checked


def notify(callbacks: Sequence[Any], hook: str, *args: Any) -> None:
    """Call `hook(*args)` on every callback that has it, in order."""
    for callback in callbacks:
        method = getattr(callback, hook, None)
        if callable(method):
            method(*args)


class CSVLogger(Callback):
    """Every epoch's row to `path` (rewritten atomically after each epoch, columns in order of
    first appearance), so an interrupted training leaves the epochs it finished."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.rows: list[dict[str, float]] = []

    def on_train_begin(self, model: Any, config: Any) -> None:
        """Start a new log (a second training with the same logger starts over)."""
        self.rows = []

    def on_epoch_end(self, epoch: int, row: dict[str, float]) -> None:
        """Add the row and rewrite the file."""
        self.rows.append(dict(row))
        columns = list(dict.fromkeys(key for r in self.rows for key in r))
        buffer = io.StringIO()
        writer = csv.DictWriter(buffer, fieldnames=columns, lineterminator="\n")
        writer.writeheader()
        writer.writerows(self.rows)
        write_text_atomic(self.path, buffer.getvalue())


class TensorBoardLogger(Callback):
    """Every numeric value of every epoch's row as a TensorBoard scalar (tag = the row's key,
    step = the epoch) in an event file under `log_dir`."""

    def __init__(self, log_dir: str | Path) -> None:
        self.log_dir = Path(log_dir)
        self.writer: Any = None

    def on_train_begin(self, model: Any, config: Any) -> None:
        """Open the event file (NoiseproofError if the tensorboard package is missing)."""
        try:
            from torch.utils.tensorboard import SummaryWriter
        except ImportError:
            raise NoiseproofError(
                "TensorBoard logging needs the tensorboard package: "
                "pip install 'noiseproof[tensorboard]'"
            ) from None
        self.log_dir.mkdir(parents=True, exist_ok=True)
        self.writer = SummaryWriter(log_dir=str(self.log_dir))

    def on_epoch_end(self, epoch: int, row: dict[str, float]) -> None:
        """Write the row's numbers at step `epoch`."""
        for key, value in row.items():
            if key != "epoch" and isinstance(value, int | float):
                self.writer.add_scalar(key, float(value), epoch)
        self.writer.flush()

    def on_train_end(self, result: Any) -> None:
        """Close the event file."""
        if self.writer is not None:
            self.writer.close()
            self.writer = None


LOGGERS: dict[str, Callable[[Path], Callback]] = {
    "csv": lambda folder: CSVLogger(folder / "history.csv"),
    "tensorboard": TensorBoardLogger,
}
"""--log names -> a callback writing into a given folder."""


def check_logger_names(names: Iterable[str]) -> list[str]:
    """`names` without repeats if each is a built-in logger (and 'tensorboard' has its
    package), else one NoiseproofError line: checked before any training starts."""
    checked = list(dict.fromkeys(names))
    for name in checked:
        if name not in LOGGERS:
            raise NoiseproofError(f"--log: unknown logger {name!r} (known: {', '.join(LOGGERS)})")
    if "tensorboard" in checked and importlib.util.find_spec("tensorboard") is None:
        raise NoiseproofError(
            "--log tensorboard needs the tensorboard package: pip install 'noiseproof[tensorboard]'"
        )
    return checked


def make_loggers(names: Iterable[str], folder: str | Path) -> list[Callback]:
    """The built-in loggers `names` ('csv', 'tensorboard'), writing into `folder`
    (history.csv and TensorBoard event files)."""
    return [LOGGERS[name](Path(folder)) for name in check_logger_names(names)]

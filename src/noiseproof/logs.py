"""Messages through the stdlib `logging` module: library modules log to
`logging.getLogger(__name__)`; the command line installs one stderr handler with `configure`.

Levels: `--quiet` shows warnings and errors only (and no progress), the default adds info
lines (what was loaded, trained, written; plain progress lines off a terminal), `-v` adds debug.
A Python user sees nothing below WARNING unless they configure logging themselves.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Callable
from typing import Any

from noiseproof.launch import is_main_process

ROOT = "noiseproof"
"""The logger every module's `getLogger(__name__)` sits under."""

LEVELS = {-1: logging.WARNING, 0: logging.INFO, 1: logging.DEBUG}
"""verbosity (quiet, normal, verbose) -> level of the `noiseproof` logger."""


class Formatter(logging.Formatter):
    """Info lines as they are; 'warning: ...' / 'error: ...'; debug lines with their module."""

    def format(self, record: logging.LogRecord) -> str:
        message = record.getMessage()
        if record.exc_info:
            message += "\n" + self.formatException(record.exc_info)
        if record.levelno == logging.INFO:
            return message
        if record.levelno < logging.INFO:
            return f"debug: {record.name}: {message}"
        return f"{record.levelname.lower()}: {message}"


class StderrHandler(logging.StreamHandler):
    """A handler writing to whatever `sys.stderr` is at the time of each message (so a
    captured or replaced stderr is followed, never a stale one)."""

    @property
    def stream(self) -> Any:
        """The current sys.stderr."""
        return sys.stderr

    @stream.setter
    def stream(self, value: Any) -> None:
        """Ignored: the stream is always the current sys.stderr."""

    def emit(self, record: logging.LogRecord) -> None:
        """Write the message; above a live tqdm bar through tqdm.write, so the bar stays whole."""
        tqdm = sys.modules.get("tqdm")
        if tqdm is None or not getattr(tqdm.tqdm, "_instances", None):
            super().emit(record)
            return
        try:
            tqdm.tqdm.write(self.format(record), file=sys.stderr)
        except Exception:  # as logging does: a failing handler never breaks the program
            self.handleError(record)


def configure(verbosity: int = 0) -> Callable[[], None]:
    """Send `noiseproof` messages to stderr at the level `verbosity` picks; returns a function
    that puts the logger back as it was before the first `configure` (the CLI calls it when a
    run ends, so a test or a host program is left as it was).

    verbosity: -1 (quiet: warnings and errors), 0 (info), 1 (debug). Calling again changes the
    level and keeps one handler. Under torchrun only rank 0 speaks: the other ranks are quiet.
    """
    if verbosity not in LEVELS:
        raise ValueError(f"verbosity must be -1, 0 or 1, got {verbosity!r}")
    logger = logging.getLogger(ROOT)
    ours = [h for h in logger.handlers if isinstance(h, StderrHandler)]
    before = (logger.level, logger.propagate) if not ours else None
    for handler in ours:
        logger.removeHandler(handler)
    handler = StderrHandler()
    handler.setFormatter(Formatter())
    logger.addHandler(handler)
    logger.setLevel(LEVELS[verbosity if is_main_process() else -1])
    logger.propagate = False

    def restore() -> None:
        for handler in [h for h in logger.handlers if isinstance(h, StderrHandler)]:
            logger.removeHandler(handler)
        if before is not None:
            logger.setLevel(before[0])
            logger.propagate = before[1]

    return restore


def quiet() -> bool:
    """True when the `noiseproof` logger was set to drop info messages (`--quiet`)."""
    level = logging.getLogger(ROOT).level
    return level != logging.NOTSET and level > logging.INFO


def info(message: str) -> None:
    """Log one info line from the command line (the `log=` callable the CLI passes around)."""
    logging.getLogger(f"{ROOT}.cli").info(message)


def debug(message: str) -> None:
    """Log one debug line from the command line (shown with -v)."""
    logging.getLogger(f"{ROOT}.cli").debug(message)

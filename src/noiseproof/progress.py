"""One progress helper for training, grids and transfers: a tqdm bar on a terminal, plain
periodic lines through `logging` anywhere else (a redirected log gets no carriage returns or
escape codes), nothing with `enabled=False` or under `--quiet`.

    with progress_bar(total=80, desc="train standard") as bar:
        for batch in batches:
            ...
            bar.update()
        bar.set_postfix({"loss": 0.31})
"""

from __future__ import annotations

import logging
import sys
import time
from collections.abc import Mapping
from typing import Any, Protocol

from noiseproof.logs import quiet

logger = logging.getLogger(__name__)

INTERVAL = 10.0
"""Seconds between two plain progress lines."""


class Progress(Protocol):
    """What callers use of a bar: advance it, show a few values, close it."""

    def update(self, n: int = 1) -> Any: ...

    def set_postfix(self, values: Mapping[str, Any]) -> Any: ...

    def close(self) -> Any: ...


class Silent:
    """No output at all."""

    def update(self, n: int = 1) -> None:
        """Nothing to advance."""

    def set_postfix(self, values: Mapping[str, Any]) -> None:
        """Nothing to show."""

    def close(self) -> None:
        """Nothing to close."""

    def __enter__(self) -> Silent:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class Lines(Silent):
    """Plain 'desc: 37% (30/80), loss=0.31' lines, at most one per `interval` seconds.

    The first line comes once `interval` seconds have passed (short loops stay silent); once
    any line was written, closing writes the final count too.
    """

    def __init__(self, total: int, desc: str, interval: float = INTERVAL) -> None:
        self.total, self.desc, self.interval = total, desc, interval
        self.count = 0
        self.postfix = ""
        self.started = self.last = time.monotonic()
        self.written: str | None = None  # the last line logged
        self.closed = False

    def line(self) -> str:
        """The current state as one line."""
        share = f"{100 * self.count / self.total:.0f}% " if self.total else ""
        return f"{self.desc}: {share}({self.count}/{self.total}){self.postfix}"

    def emit(self) -> None:
        """Log the current line now."""
        self.written = self.line()
        logger.info(self.written)
        self.last = time.monotonic()

    def update(self, n: int = 1) -> None:
        """Advance by `n`; log a line if `interval` seconds passed since the last one."""
        self.count += n
        if time.monotonic() - self.last >= self.interval:
            self.emit()

    def set_postfix(self, values: Mapping[str, Any]) -> None:
        """Values appended to the next lines ('k=v' each)."""
        self.postfix = "".join(f", {k}={v}" for k, v in values.items())

    def close(self) -> None:
        """Log the final count if earlier lines were written (and it is not the last one)."""
        if not self.closed and self.written and self.written != self.line():
            self.emit()
        self.closed = True


class Bar(Silent):
    """A tqdm bar on stderr (removed when done unless `leave`)."""

    def __init__(self, total: int, desc: str, unit: str, leave: bool) -> None:
        from tqdm.auto import tqdm  # here: only terminals need it

        self.bar = tqdm(total=total, desc=desc, unit=unit, leave=leave, file=sys.stderr)

    def update(self, n: int = 1) -> None:
        """Advance the bar by `n`."""
        self.bar.update(n)

    def set_postfix(self, values: Mapping[str, Any]) -> None:
        """Show `values` after the bar."""
        self.bar.set_postfix(dict(values))

    def close(self) -> None:
        """Remove (or leave) the bar."""
        self.bar.close()


def on_terminal() -> bool:
    """True if stderr is a terminal or a notebook kernel shows the output (bars are welcome)."""
    isatty = getattr(sys.stderr, "isatty", None)
    return bool(isatty and isatty()) or "ipykernel" in sys.modules


def progress_bar(
    total: int,
    desc: str,
    *,
    enabled: bool = True,
    unit: str = "it",
    leave: bool = False,
    interval: float | None = None,
) -> Silent:
    """A progress reporter for `total` steps: a tqdm bar on a terminal, `Lines` otherwise
    (one line per `interval` seconds, default `INTERVAL`), `Silent` when not `enabled` or when
    `--quiet` (noiseproof.logs.quiet) is on."""
    if not enabled or quiet():
        return Silent()
    if on_terminal():
        return Bar(total, desc, unit, leave)
    return Lines(total, desc, INTERVAL if interval is None else interval)

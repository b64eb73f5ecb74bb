"""The measurement CSV of `noiseproof fit-device`: its schema and a strict reader.

One row per cell, or, with repeated reads, one row per read (long format). Conductances in uS.

Spreadsheet exports read as they are: a UTF-8 byte-order mark, CRLF line ends, a trailing
comma on every line (an unnamed last column, empty on every row) and blank rows (empty or only
commas) are accepted.

Outliers: a g_programmed or g_read above OUTLIER_FACTOR x the largest g_target is refused,
naming its lines. No device state is that far outside the targets' window (stuck-high cells sit
near the top of the device's range, a few times the window at most); it is an instrument's
overflow code (e.g. 9.9e37), a value in another unit (nS in a uS column is 1000x) or a typing
error, and fitted as it is it would become a stuck cluster that programs devices at 1e30 uS.
Refused, not dropped: the user decides whether the cell was broken (delete the row) or its
reading (fix it); nothing is silently left out of the fitted fractions.
"""

from __future__ import annotations

import csv
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from noiseproof.errors import NoiseproofError

REQUIRED = ("g_target", "g_programmed")
READ_COLUMNS = ("time_s", "g_read")
KNOWN = (*REQUIRED, "cell", *READ_COLUMNS)
MIN_READS_PER_CELL = 3
"""Reads a cell needs for its drift fit: two for the slope, one more for its standard error."""

SEE_HELP = "see `noiseproof fit-device --help`"
OUTLIER_FACTOR = 10.0
"""A conductance above this many times the largest g_target is an outlier (module docstring)."""
OUTLIERS_NAMED = 3
"""Outlier lines named in the error line (then how many more)."""


@dataclass(frozen=True)
class Reads:
    """Repeated reads: for each read the index of its cell, its time (s) and conductance (uS)."""

    cell: np.ndarray
    time_s: np.ndarray
    g_read: np.ndarray


@dataclass(frozen=True)
class Measurements:
    """One entry per cell: target and programmed conductance (uS, float64), the cell ids, and
    the reads when the file has time columns."""

    source: str
    cells: tuple[str, ...]
    g_target: np.ndarray
    g_programmed: np.ndarray
    reads: Reads | None


def _number(path: Path, line: int, column: str, text: str | None, *, positive: bool) -> float:
    """The value of `column` on `line` as a finite float >= 0 (> 0 with `positive`)."""
    where = f"{path}, line {line}: {column}"
    if text is None or not text.strip():
        raise NoiseproofError(f"{where} is missing")
    try:
        value = float(text)
    except ValueError:
        raise NoiseproofError(f"{where} {text.strip()!r} is not a number") from None
    if not math.isfinite(value):
        raise NoiseproofError(f"{where} {text.strip()!r} is not finite")
    if value < 0 or (positive and value == 0):
        kind = "must be > 0" if positive else "is negative: conductances are >= 0 (uS)"
        raise NoiseproofError(f"{where} {text.strip()} {kind}")
    return value


def _header(path: Path, fields: list[str] | None) -> list[str]:
    """The column names, checked against the schema (required present, none unknown); a
    spreadsheet's unnamed trailing columns are left out."""
    if not fields:
        raise NoiseproofError(f"{path} is empty: expected a header ({SEE_HELP})")
    names = [name.strip() for name in fields]
    while names and not names[-1]:
        names.pop()
    if "" in names:
        raise NoiseproofError(f"{path}: column {names.index('') + 1} of the header has no name")
    missing = [name for name in REQUIRED if name not in names]
    if missing:
        raise NoiseproofError(f"{path} lacks column(s) {', '.join(missing)} ({SEE_HELP})")
    unknown = [name for name in names if name not in KNOWN]
    if unknown:
        raise NoiseproofError(
            f"{path}: unknown column(s) {', '.join(unknown)} (known: {', '.join(KNOWN)})"
        )
    if len(set(names)) != len(names):
        raise NoiseproofError(f"{path}: a column is named twice")
    reads = [name for name in READ_COLUMNS if name in names]
    if reads and len(reads) != len(READ_COLUMNS):
        raise NoiseproofError(f"{path}: time_s and g_read go together, found only {reads[0]}")
    if reads and "cell" not in names:
        raise NoiseproofError(f"{path}: reads (time_s, g_read) need a cell column")
    return names


def read_measurements(path: str | Path) -> Measurements:
    """Read and check a measurement CSV (schema: the `fit-device` help); NoiseproofError
    naming the file and line of the first problem."""
    path = Path(path)
    if not path.is_file():
        raise NoiseproofError(f"measurements file not found: {path}")
    try:
        text = path.read_bytes().decode("utf-8-sig")
    except UnicodeDecodeError as error:
        raise NoiseproofError(f"{path} is not UTF-8 text (byte {error.start})") from None
    reader = csv.reader(text.splitlines())
    header = next(reader, None)
    names = _header(path, header)
    width = len(header or [])  # with the unnamed trailing columns
    has_cell, has_reads = "cell" in names, "time_s" in names
    cells: dict[str, tuple[float, float, int]] = {}  # id -> (target, programmed, line)
    read_cell, read_time, read_g, read_line = [], [], [], []
    for line, row in enumerate(reader, start=2):
        if not any(value.strip() for value in row):  # a blank row, or only commas
            continue
        if len(names) < len(row) <= width and not any(v.strip() for v in row[len(names) :]):
            row = row[: len(names)]  # the empty values of the unnamed trailing columns
        if len(row) != len(names):
            raise NoiseproofError(
                f"{path}, line {line}: {len(row)} values for {len(names)} columns"
            )
        values = dict(zip(names, row, strict=True))
        target = _number(path, line, "g_target", values["g_target"], positive=False)
        programmed = _number(path, line, "g_programmed", values["g_programmed"], positive=False)
        cell = values["cell"].strip() if has_cell else str(len(cells))
        if has_cell and not cell:
            raise NoiseproofError(f"{path}, line {line}: cell is missing")
        known = cells.get(cell)
        if known is None:
            cells[cell] = (target, programmed, line)
        elif not has_reads:
            raise NoiseproofError(
                f"{path}, line {line}: cell {cell} repeats line {known[2]} (one row per cell "
                "without time_s/g_read)"
            )
        elif known[:2] != (target, programmed):
            raise NoiseproofError(
                f"{path}, line {line}: cell {cell} has another g_target or g_programmed than "
                f"on line {known[2]}"
            )
        if has_reads:
            read_cell.append(cell)
            read_time.append(_number(path, line, "time_s", values["time_s"], positive=True))
            read_g.append(_number(path, line, "g_read", values["g_read"], positive=False))
            read_line.append(line)
    if not cells:
        raise NoiseproofError(f"{path} has a header but no rows")
    ids = tuple(cells)
    found = [
        (line, cell, "g_programmed", programmed) for cell, (_, programmed, line) in cells.items()
    ]
    found += [
        (line, cell, "g_read", g)
        for line, cell, g in zip(read_line, read_cell, read_g, strict=True)
    ]
    _refuse_outliers(path, max(target for target, _, _ in cells.values()), found)
    reads = _reads(path, ids, read_cell, read_time, read_g) if has_reads else None
    return Measurements(
        source=str(path),
        cells=ids,
        g_target=np.array([cells[c][0] for c in ids]),
        g_programmed=np.array([cells[c][1] for c in ids]),
        reads=reads,
    )


def _refuse_outliers(path: Path, g_max: float, values: list[tuple[int, str, str, float]]) -> None:
    """NoiseproofError naming the lines whose conductance (line, cell, column, value) is above
    OUTLIER_FACTOR x g_max, the largest target (module docstring); none when every target is 0
    (the fit refuses that data anyway)."""
    limit = OUTLIER_FACTOR * g_max
    far = sorted(item for item in values if item[3] > limit) if g_max > 0 else []
    if not far:
        return
    named = ", ".join(
        f"line {line} (cell {cell}: {column} {value:.4g} uS)"
        for line, cell, column, value in far[:OUTLIERS_NAMED]
    )
    more = f" and {len(far) - OUTLIERS_NAMED} more" if len(far) > OUTLIERS_NAMED else ""
    raise NoiseproofError(
        f"{path}: {len(far)} value(s) far outside every bin, above {OUTLIER_FACTOR:g} x the "
        f"largest g_target ({limit:.4g} uS): {named}{more}; no device holds that (an "
        "instrument's overflow code? another unit?): fix or delete these rows"
    )


def _reads(
    path: Path, ids: tuple[str, ...], cell: list[str], time_s: list[float], g_read: list[float]
) -> Reads:
    """The reads as arrays, each cell with >= MIN_READS_PER_CELL reads at >= 2 distinct times."""
    index = {c: i for i, c in enumerate(ids)}
    reads = Reads(np.array([index[c] for c in cell]), np.array(time_s), np.array(g_read))
    counts = np.bincount(reads.cell, minlength=len(ids))
    first = np.full(len(ids), np.inf)
    np.minimum.at(first, reads.cell, reads.time_s)
    last = np.full(len(ids), -np.inf)
    np.maximum.at(last, reads.cell, reads.time_s)
    short = np.flatnonzero((counts < MIN_READS_PER_CELL) | (first == last))
    if short.size:
        i = int(short[0])
        times = len(set(reads.time_s[reads.cell == i].tolist()))
        raise NoiseproofError(
            f"{path}: cell {ids[i]} has {counts[i]} read(s) at {times} time(s): drift needs "
            f">= {MIN_READS_PER_CELL} reads at >= 2 distinct times per cell"
        )
    return reads

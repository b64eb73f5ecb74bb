"""Reading back, under --resume, the records an earlier run saved: checked, never trusted.

Our own writes are atomic, so a truncated, non-JSON or foreign record was put there by someone
else; it is refused in one line that names the file and says how to recompute it, rather than
mixed into the results or ending in a traceback.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from noiseproof.errors import NoiseproofError

_REDO = "delete it to recompute it with --resume"


def check_record(path: Path, record: Any, expect: dict[str, Any]) -> None:
    """NoiseproofError unless `record` (a dict, or a list of dicts) has every `expect` value.

    Values are compared as JSON would store them (tuples as lists).
    """
    items = record if isinstance(record, list) else [record]
    for item in items:
        if not isinstance(item, dict):
            raise NoiseproofError(
                f"{path} is not a record of this run (not a JSON object): {_REDO}"
            )
        for key, value in expect.items():
            wanted = json.loads(json.dumps(value))
            if key not in item:
                raise NoiseproofError(f"{path} is not a record of this run (no {key!r}): {_REDO}")
            if item[key] != wanted:
                shown = "differs" if isinstance(wanted, (dict, list)) else f"is {item[key]!r}"
                raise NoiseproofError(
                    f"{path} belongs to another job: its {key} {shown}"
                    + ("" if isinstance(wanted, (dict, list)) else f", expected {wanted!r}")
                    + f"; {_REDO}"
                )


def read_record(path: str | Path, expect: dict[str, Any]) -> Any:
    """The JSON record at `path`, checked by `check_record`; one-line NoiseproofError if it is
    unreadable, truncated, not JSON or not this job's."""
    path = Path(path)
    try:
        record = json.loads(path.read_bytes().decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as error:
        reason = "not UTF-8 text" if isinstance(error, UnicodeDecodeError) else "not valid JSON"
        raise NoiseproofError(f"{path} is truncated or {reason}: {_REDO}") from None
    check_record(path, record, expect)
    return record

"""Job records as files: strict JSON out, and under --resume read back checked, never trusted.

Strict JSON: no NaN or Infinity anywhere (`strict_json`). A value that is not a finite number
is written as null, and the mapping holding it gets a sibling key `<key>_reason` saying why
(a reason set by whoever built the record, e.g. "no validation split: the last epoch was
kept", is kept; otherwise "not a finite number (nan)"); a list holding such values gets its
reason on its own key. Reading refuses NaN/Infinity too.

Our own writes are atomic, so a truncated, non-JSON or foreign record was put there by someone
else; it is refused in one line that names the file and says how to recompute it, rather than
mixed into the results or ending in a traceback.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

from noiseproof.errors import NoiseproofError, elide

_REDO = "delete it to recompute it with --resume"


def strict_json(value: Any) -> Any:
    """`value` with every non-finite float replaced by None and explained by a sibling
    `<key>_reason` (see the module docstring); other values as they are (tuples as lists)."""
    if isinstance(value, dict):
        out: dict[str, Any] = {}
        reasons: dict[str, str] = {}
        for key, item in value.items():
            out[key] = strict_json(item)
            if isinstance(item, float) and not math.isfinite(item):
                reasons[f"{key}_reason"] = f"not a finite number ({item})"
            elif isinstance(item, list | tuple) and _non_finite(item):
                reasons[f"{key}_reason"] = "null entries: not finite numbers"
        for key, reason in reasons.items():
            out.setdefault(key, reason)
        return out
    if isinstance(value, list | tuple):
        return [strict_json(item) for item in value]
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def _non_finite(items: list | tuple) -> bool:
    """Whether a list holds a non-finite float, at any depth of nested lists."""
    for value in items:
        if isinstance(value, list | tuple) and _non_finite(value):
            return True
        if isinstance(value, float) and not math.isfinite(value):
            return True
    return False


def dumps(value: Any) -> str:
    """`value` as indented strict JSON text (`strict_json` applied first)."""
    return json.dumps(strict_json(value), indent=2, allow_nan=False) + "\n"


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"{name} is not strict JSON")


def loads(text: str) -> Any:
    """Strict JSON text -> value; ValueError on NaN/Infinity or anything not JSON."""
    return json.loads(text, parse_constant=_refuse_constant)


def lookup(record: dict[str, Any], key: str) -> tuple[bool, Any]:
    """(found, value) of a key of `record`; a dotted key ('inputs.data') reaches into mappings."""
    value: Any = record
    for part in key.split("."):
        if not isinstance(value, dict) or part not in value:
            return False, None
        value = value[part]
    return True, value


def first_difference(have: Any, want: Any, where: str = "") -> tuple[str, Any, Any]:
    """(dotted path, found value, wanted value) of the first place two JSON values differ."""
    if isinstance(have, dict) and isinstance(want, dict):
        for key in [*want, *(k for k in have if k not in want)]:
            if have.get(key, _MISSING) != want.get(key, _MISSING):
                return first_difference(
                    have.get(key, _MISSING), want.get(key, _MISSING), f"{where}.{key}"
                )
    return where.lstrip("."), have, want


class _Missing:
    def __repr__(self) -> str:
        return "(missing)"


_MISSING = _Missing()


def describe_difference(key: str, have: Any, want: Any) -> str:
    """'its seed is 3, expected 0' or, for nested values, 'its config differs at train.lr:
    0.5, expected 0.001' (values elided to a few dozen characters)."""
    if not isinstance(want, dict | list):
        return f"its {key} is {elide(have)}, expected {elide(want)}"
    path, found, wanted = first_difference(have, want)
    at = f" at {path}" if path else ""
    verb = "differ" if key.endswith("s") else "differs"
    return f"its {key} {verb}{at}: {elide(found)}, expected {elide(wanted)}"


def check_record(
    path: Path,
    record: Any,
    expect: dict[str, Any],
    *,
    redo: str = _REDO,
    mismatch: str = "belongs to another job",
) -> None:
    """NoiseproofError unless `record` (a dict, or a list of dicts) has every `expect` value
    (keys may be dotted: 'inputs.data'); the message names the file, the first difference and
    what to do (`redo`).

    Values are compared as JSON would store them (tuples as lists).
    """
    items = record if isinstance(record, list) else [record]
    for item in items:
        if not isinstance(item, dict):
            raise NoiseproofError(f"{path} is not a record of this run (not a JSON object): {redo}")
        for key, value in expect.items():
            wanted = json.loads(json.dumps(value))
            found, have = lookup(item, key)
            if not found:
                raise NoiseproofError(f"{path} is not a record of this run (no {key!r}): {redo}")
            if have != wanted:
                raise NoiseproofError(
                    f"{path} {mismatch}: {describe_difference(key, have, wanted)}; {redo}"
                )


def read_json(path: str | Path) -> Any:
    """The strict JSON value at `path`; one-line NoiseproofError if it is unreadable,
    truncated, not JSON or holds NaN/Infinity."""
    path = Path(path)
    try:
        return loads(path.read_bytes().decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as error:
        reason = "not UTF-8 text" if isinstance(error, UnicodeDecodeError) else "not valid JSON"
        raise NoiseproofError(f"{path} is truncated or {reason}: {_REDO}") from None


def read_record(path: str | Path, expect: dict[str, Any]) -> Any:
    """The JSON record at `path`, checked by `check_record`; one-line NoiseproofError if it is
    unreadable, truncated, not JSON or not this job's."""
    path = Path(path)
    record = read_json(path)
    check_record(path, record, expect)
    return record

"""How labels and levels become file names in an output folder (one place, so collisions can be
refused when the config is validated, before anything is written)."""

from __future__ import annotations


def safe_name(text: str) -> str:
    """A file-name-safe version of a label or level: anything but letters, digits, '-' and '.'
    becomes '_'."""
    return "".join(c if c.isalnum() or c in "-." else "_" for c in text)


def level_name(level: float) -> str:
    """A noise level as it appears in a job file name (`{level:g}`: 0.1000001 -> '0.1')."""
    return f"{level:g}"

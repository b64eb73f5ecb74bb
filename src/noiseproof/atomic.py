"""Atomic file writes: a reader sees the old file or the new one, never half of one.

The temporary file is `.<name>.<8 random chars>.tmp` beside the target; a process killed while
writing leaves it behind, and `remove_stale_temps` (called by the run that next takes the
folder's lock, see noiseproof.outputs) removes it. Files are created with mode 0o666 and the
kernel applies the umask (and any default ACL) as for any other new file: no umask is read, so
there is nothing to race with in threads.
"""

from __future__ import annotations

import json
import os
import re
import secrets
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any, BinaryIO

_RANDOM = "abcdefghijklmnopqrstuvwxyz0123456789_"  # as tempfile's names: old leftovers match too
TEMP_PATTERN = re.compile(r"^\.(?P<name>.+)\.[a-z0-9_]{8}\.tmp$")
"""The name of a temporary file of `write_atomic`; group `name` is the target's name."""


def _open_temp(path: Path) -> tuple[int, Path]:
    """Create a new temporary file for `path` (O_EXCL, mode 0o666 less the umask)."""
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0)
    flags |= getattr(os, "O_BINARY", 0)
    for _ in range(100):
        suffix = "".join(secrets.choice(_RANDOM) for _ in range(8))
        tmp = path.parent / f".{path.name}.{suffix}.tmp"
        try:
            return os.open(tmp, flags, 0o666), tmp
        except FileExistsError:
            continue
    raise FileExistsError(f"no free temporary name beside {path}")


def _sync_folder(folder: Path) -> None:
    """fsync a folder so a rename in it survives a power cut (skipped where not supported)."""
    try:
        fd = os.open(folder, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def write_atomic(path: str | Path, write: Callable[[BinaryIO], object]) -> Path:
    """Call `write(handle)` on a temp file beside `path`, fsync it, then rename it over `path`."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = _open_temp(path)
    try:
        with os.fdopen(fd, "wb") as handle:
            write(handle)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except OSError as error:  # a full disk, a lost mount: the message names the file
        Path(tmp).unlink(missing_ok=True)
        raise OSError(error.errno, error.strerror or str(error), str(path)) from None
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    _sync_folder(path.parent)
    return path


def remove_stale_temps(folder: str | Path, names: Iterable[str] | None = None) -> list[Path]:
    """Delete the temporary files `write_atomic` left in `folder` (not in its subfolders).

    names: only those of these target file names (default: every one). Call it only while no
    other process can be writing there (holding the folder's lock). Returns what was removed.
    """
    folder, wanted = Path(folder), None if names is None else set(names)
    removed: list[Path] = []
    if not folder.is_dir():
        return removed
    for entry in folder.iterdir():
        match = TEMP_PATTERN.match(entry.name)
        if match and (wanted is None or match["name"] in wanted) and entry.is_file():
            entry.unlink(missing_ok=True)
            removed.append(entry)
    return removed


def write_text_atomic(path: str | Path, text: str) -> Path:
    """Write `text` (UTF-8) to `path` atomically."""
    return write_atomic(path, lambda handle: handle.write(text.encode("utf-8")))


def write_json_atomic(path: str | Path, data: Any) -> Path:
    """Write `data` as indented JSON to `path` atomically."""
    return write_text_atomic(path, json.dumps(data, indent=2, sort_keys=False) + "\n")

"""Output folders: one run writes a folder at a time, and it starts by clearing crash debris.

A run takes an exclusive `fcntl.flock` on `<folder>/.noiseproof.lock` before it writes. The
kernel drops the lock when the process ends, however it ends (kill -9 included), so a lock is
never stale; the file itself is removed on a normal exit and merely reused after a crash. It
records the holder (pid, host, command, start time) so that a second run can say who holds it.
Once the lock is held no other run can be writing there, so the temporary files of
noiseproof.atomic left by a killed run are removed (in the folder and the subfolders the run
writes). A run into one file (`train`'s checkpoint) locks `.<file name>.lock` beside it instead.

fcntl.flock is used directly rather than the `filelock` package: it is the same system call
that `filelock` wraps on Unix, the standard library has it, and we need our own lock-file
content (the holder) and the inode re-check that makes removing the file on release safe.
"""

from __future__ import annotations

import functools
import inspect
import json
import os
import socket
import sys
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

from noiseproof.atomic import remove_stale_temps
from noiseproof.errors import NoiseproofError
from noiseproof.launch import is_main_process

try:
    import fcntl
except ImportError:  # Windows: no flock; runs are not locked there
    fcntl = None  # type: ignore[assignment]

LOCK_NAME = ".noiseproof.lock"
F = TypeVar("F", bound=Callable[..., Any])
_HELD: set[tuple[str, int]] = set()  # (lock file, thread) pairs this process holds


def check_out(out: Any, *, file: bool = False) -> Path:
    """`out` as a Path, or NoiseproofError if it is empty or of the wrong kind (nothing written).

    file: `out` names a file to write (it must not be a folder) instead of a folder (it must
    not be a file).
    """
    if not isinstance(out, (str, os.PathLike)):
        raise TypeError(f"out must be a path (str or os.PathLike), got {type(out).__name__}")
    if not os.fspath(out).strip():
        raise NoiseproofError("--out is empty: give an output " + ("file" if file else "folder"))
    path = Path(out)
    if file and path.is_dir():
        raise NoiseproofError(f"--out {path} is a folder: give the checkpoint file to write")
    if not file and path.exists() and not path.is_dir():
        raise NoiseproofError(f"--out {path} is a file, not a folder: choose another --out")
    for parent in (path.parent if file else path).parents:
        if parent.exists() and not parent.is_dir():
            raise NoiseproofError(f"--out {path}: {parent} is a file, not a folder")
    return path


def _holder_text() -> str:
    """Who is writing: pid, host, command line and start time, as JSON."""
    program = Path(sys.argv[0]) if sys.argv and sys.argv[0] else Path("python")
    name = program.parent.name if program.name == "__main__.py" else program.name  # python -m
    command = " ".join([name, *sys.argv[1:]])
    return json.dumps(
        {
            "pid": os.getpid(),
            "host": socket.gethostname(),
            "command": command[:300],
            "since": time.strftime("%Y-%m-%d %H:%M:%S %z"),
        }
    )


def _describe_holder(fd: int) -> str:
    """'pid 12 on host, `noiseproof compare ...`, since ...' from a held lock file."""
    try:
        holder = json.loads(os.pread(fd, 4096, 0).decode("utf-8"))
        return (
            f"pid {holder['pid']} on {holder['host']}, `{holder['command']}`, "
            f"since {holder['since']}"
        )
    except (OSError, ValueError, KeyError, TypeError):
        return "a run that is just starting"


def _acquire(lock: Path, what: str) -> int | None:
    """An open descriptor of `lock` holding its exclusive flock; NoiseproofError if held."""
    if fcntl is None:
        return None
    while True:
        fd = os.open(lock, os.O_RDWR | os.O_CREAT | getattr(os, "O_CLOEXEC", 0), 0o666)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = _describe_holder(fd)
            os.close(fd)
            raise NoiseproofError(
                f"{what} is being written by another run ({holder}): wait for it to end "
                "or choose another --out"
            ) from None
        except OSError as error:
            os.close(fd)
            raise NoiseproofError(f"cannot lock {lock}: {error.strerror or error}") from None
        try:  # the file may have been removed by a holder that released it meanwhile
            same = os.path.samestat(os.fstat(fd), os.stat(lock))
        except FileNotFoundError:
            same = False
        if same:
            os.ftruncate(fd, 0)
            os.pwrite(fd, _holder_text().encode("utf-8"), 0)
            return fd
        os.close(fd)


def _release(lock: Path, fd: int | None) -> None:
    """Remove the lock file (while still holding it), then drop the lock."""
    if fd is None:
        return
    try:
        lock.unlink(missing_ok=True)
    finally:
        os.close(fd)


@contextmanager
def _holding(
    lock: Path, what: str, created: list[Path], clean: Callable[[], object]
) -> Iterator[None]:
    """Hold `lock` (taking it unless this thread already holds it), then `clean()`; on exit
    release it and remove the `created` folders (deepest first) that were left empty."""
    key = (os.path.realpath(lock), threading.get_ident())
    if key in _HELD:  # a nested call (a command around run_compare): already ours
        yield
        return
    fd = None
    try:
        fd = _acquire(lock, what)
        _HELD.add(key)
        clean()
        yield
    finally:
        _HELD.discard(key)
        _release(lock, fd)
        for folder in created:
            try:
                folder.rmdir()
            except OSError:
                break


@contextmanager
def output_folder(out: Any, subfolders: Iterable[str] = ()) -> Iterator[Path]:
    """Hold the lock of output folder `out` (created if needed) while the block writes it.

    The stale temporary files of noiseproof.atomic in `out` and in `subfolders` (relative glob
    patterns, e.g. "jobs" or "logs/*") are removed once the lock is held. Folders this call
    created and left empty are removed again, so a run refused before writing anything leaves
    nothing behind. Nested calls for the same folder in one thread hold it once.
    """
    folder = check_out(out)
    created = [p for p in (folder, *folder.parents) if not p.exists()]
    folder.mkdir(parents=True, exist_ok=True)

    def clean() -> None:
        remove_stale_temps(folder)
        for pattern in subfolders:
            for sub in folder.glob(pattern):
                remove_stale_temps(sub)

    with _holding(folder / LOCK_NAME, str(folder), created, clean):
        yield folder


@contextmanager
def output_file(out: Any, companions: Iterable[str] = ()) -> Iterator[Path]:
    """Hold the lock of output file `out` (`.<name>.lock` beside it) while the block writes it.

    Stale temporary files of `out` and of the `companions` (other file names in its folder
    that the run writes, e.g. a history CSV) are removed once the lock is held.
    """
    path = check_out(out, file=True)
    created = [p for p in path.parents if not p.exists()]
    path.parent.mkdir(parents=True, exist_ok=True)
    lock = path.parent / f".{path.name}.lock"
    names = [path.name, *companions]
    with _holding(lock, str(path), created, lambda: remove_stale_temps(path.parent, names)):
        yield path


def locks_output(
    argument: str = "out",
    *,
    subfolders: Iterable[str] = (),
    file: bool = False,
    companions: Callable[[Path], Iterable[str]] | None = None,
) -> Callable[[F], F]:
    """Decorator: the function runs holding the lock of its `argument` (a folder, or a file).

    For a folder, `subfolders` are cleaned of stale temporary files too; for a file,
    `companions(path)` names the other files written beside it. An argument that is None (an
    in-memory run) takes no lock; under torchrun only rank 0 (the one that writes) takes it.
    """
    subfolders = tuple(subfolders)

    def decorate(func: F) -> F:
        signature = inspect.signature(func)

        @functools.wraps(func)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            if argument in kwargs:  # click passes every option by keyword
                out = kwargs[argument]
            else:
                out = signature.bind_partial(*args, **kwargs).arguments.get(argument)
            if out is None or not is_main_process():
                return func(*args, **kwargs)
            if file:
                names = companions(check_out(out, file=True)) if companions else ()
                holding = output_file(out, names)
            else:
                holding = output_folder(out, subfolders)
            with holding:
                return func(*args, **kwargs)

        return wrapper  # type: ignore[return-value]

    return decorate

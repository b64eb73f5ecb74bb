"""Output-folder locks between real processes, crash debris cleanup, and --out checks."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import textwrap

import pytest

from noiseproof.errors import NoiseproofError
from noiseproof.outputs import LOCK_NAME, check_out, locks_output, output_file, output_folder

HOLDER = textwrap.dedent(
    """
    import sys, time
    from noiseproof.outputs import output_file, output_folder
    hold = output_file if sys.argv[1] == "file" else output_folder
    with hold(sys.argv[2]):
        print("holding", flush=True)
        time.sleep(120)
    """
)


def hold_in_child(kind: str, path) -> subprocess.Popen:
    """A second process holding the lock of `path` (a folder or a file) until killed."""
    child = subprocess.Popen(
        [sys.executable, "-c", HOLDER, kind, str(path)], stdout=subprocess.PIPE, text=True
    )
    assert child.stdout.readline().strip() == "holding"
    return child


def test_second_process_is_refused_naming_the_holder(tmp_path):
    out = tmp_path / "run"
    child = hold_in_child("folder", out)
    try:
        with pytest.raises(NoiseproofError) as caught, output_folder(out):
            pass
        message = str(caught.value)
        assert "\n" not in message
        assert f"pid {child.pid}" in message and socket.gethostname() in message
        assert "-c folder" in message  # the holder's command line
        assert "since 2" in message  # its start time
        assert (out / LOCK_NAME).exists()
    finally:
        child.kill()
        child.wait()
    # kill -9 leaves the lock file, but not the lock: the next run takes it at once
    assert (out / LOCK_NAME).exists()
    with output_folder(out):
        pass
    assert not (out / LOCK_NAME).exists()  # removed on a normal release


def test_file_lock_between_processes(tmp_path):
    target = tmp_path / "models" / "m.pt"
    child = hold_in_child("file", target)
    try:
        with pytest.raises(NoiseproofError, match=f"pid {child.pid}"), output_file(target):
            pass
        with output_file(tmp_path / "models" / "other.pt"):  # another file: not locked
            pass
    finally:
        child.send_signal(signal.SIGKILL)
        child.wait()
    with output_file(target):
        pass
    assert sorted(os.listdir(tmp_path / "models")) == []


def test_taking_the_lock_removes_stale_temps_in_the_named_subfolders(tmp_path):
    out = tmp_path / "run"
    (out / "jobs").mkdir(parents=True)
    (out / "other").mkdir()
    (out / "logs" / "standard-seed0").mkdir(parents=True)
    stale = [
        out / ".results.json.abcdefgh.tmp",
        out / "jobs" / ".a.json.k2j3h4g5.tmp",
        out / "logs" / "standard-seed0" / ".history.csv.abcdefgh.tmp",
    ]
    kept = [out / "other" / ".x.json.abcdefgh.tmp", out / "results.json", out / "jobs" / "a.json"]
    for path in stale + kept:
        path.write_text("x")
    with output_folder(out, subfolders=["jobs", "checkpoints", "logs/*"]):
        assert not any(p.exists() for p in stale)
    assert all(p.exists() for p in kept)


def test_file_lock_removes_only_its_own_temps(tmp_path):
    names = [".m.pt.abcdefgh.tmp", ".m.history.csv.abcdefgh.tmp", ".n.pt.abcdefgh.tmp"]
    for name in names:
        (tmp_path / name).write_text("x")
    with output_file(tmp_path / "m.pt", ["m.history.csv"]):
        pass
    assert sorted(os.listdir(tmp_path)) == [".n.pt.abcdefgh.tmp"]


def test_refused_or_failed_run_leaves_no_folder(tmp_path):
    out = tmp_path / "a" / "b"
    with pytest.raises(RuntimeError), output_folder(out):
        assert (out / LOCK_NAME).exists()
        raise RuntimeError("bad input found after locking")
    assert not (tmp_path / "a").exists()


@pytest.mark.parametrize("out", ["", "   "])
def test_empty_out_is_refused(out):
    with pytest.raises(NoiseproofError, match="--out is empty"):
        check_out(out)


def test_out_that_is_a_file_is_refused(tmp_path):
    afile = tmp_path / "f"
    afile.write_text("x")
    with pytest.raises(NoiseproofError, match="is a file, not a folder"):
        check_out(afile)
    with pytest.raises(NoiseproofError, match="is a file, not a folder"):
        check_out(afile / "sub")
    with pytest.raises(NoiseproofError, match="is a folder"):
        check_out(tmp_path, file=True)
    with pytest.raises(TypeError, match="out must be a path"):
        check_out(3)
    assert sorted(os.listdir(tmp_path)) == ["f"]


def test_decorator_finds_the_argument_and_skips_none(tmp_path):
    seen = []

    @locks_output("out", subfolders=["jobs"])
    def run(config, out=None, *, flag=False):
        """Docstring kept."""
        seen.append(None if out is None else (tmp_path / "r" / LOCK_NAME).exists())
        return config

    assert run(1, tmp_path / "r") == 1
    assert run(2, out=tmp_path / "r", flag=True) == 2
    assert run(3) == 3
    assert seen == [True, True, None]
    assert run.__doc__ == "Docstring kept."


def test_nested_hold_in_one_thread_is_one_hold(tmp_path):
    out = tmp_path / "run"
    with output_folder(out):
        with output_folder(out):  # e.g. a command body around run_compare
            pass
        assert (out / LOCK_NAME).exists()  # the outer hold still has it
        child = subprocess.run(
            [sys.executable, "-c", HOLDER, "folder", str(out)], capture_output=True, text=True
        )
        assert child.returncode != 0 and f"pid {os.getpid()}" in child.stderr
    assert not (out / LOCK_NAME).exists()

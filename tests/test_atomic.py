"""Atomic writes: files follow the umask, failed writes leave nothing, stale temps are found."""

from __future__ import annotations

import os
import stat
import threading

import pytest

from noiseproof.atomic import (
    TEMP_PATTERN,
    remove_stale_temps,
    write_atomic,
    write_json_atomic,
    write_text_atomic,
)


@pytest.fixture
def umask():
    """Set the process umask for one test, restored afterwards."""
    old = os.umask(0o022)
    os.umask(old)
    yield lambda value: os.umask(value)
    os.umask(old)


@pytest.mark.parametrize("mask", [0o022, 0o077, 0o027, 0o002])
def test_files_follow_the_umask(tmp_path, umask, mask):
    umask(mask)
    text = write_text_atomic(tmp_path / "a.txt", "x")
    data = write_json_atomic(tmp_path / "sub" / "b.json", {"a": 1})
    again = write_text_atomic(tmp_path / "a.txt", "y")  # replacing keeps following it
    for path in (text, data, again):
        assert stat.S_IMODE(path.stat().st_mode) == 0o666 & ~mask, oct(path.stat().st_mode)
    assert stat.S_IMODE((tmp_path / "sub").stat().st_mode) == 0o777 & ~mask


def test_umask_is_not_read_or_changed_by_writes(tmp_path, umask):
    """Threads writing while another thread's umask is in force all see that umask: the
    kernel applies it at creation, nothing sets and resets it in between."""
    umask(0o077)
    errors = []

    def writer(index: int) -> None:
        for step in range(20):
            path = write_text_atomic(tmp_path / f"t{index}-{step}.txt", "x")
            if stat.S_IMODE(path.stat().st_mode) != 0o600:
                errors.append(path)

    threads = [threading.Thread(target=writer, args=(i,)) for i in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert os.umask(0o077) == 0o077  # still what the test set


def test_failed_write_leaves_old_file_and_no_temp(tmp_path):
    target = write_text_atomic(tmp_path / "r.json", "old")

    def broken(handle):
        handle.write(b"half")
        raise RuntimeError("disk on fire")

    with pytest.raises(RuntimeError):
        write_atomic(target, broken)
    assert target.read_text() == "old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["r.json"]


def test_temp_names_match_the_stale_pattern(tmp_path):
    seen = []

    def spy(handle):
        seen.extend(p.name for p in tmp_path.iterdir() if p.name != "r.json")
        handle.write(b"{}")

    write_atomic(tmp_path / "r.json", spy)
    assert len(seen) == 1
    match = TEMP_PATTERN.match(seen[0])
    assert match and match["name"] == "r.json"


def test_remove_stale_temps_only_removes_temps(tmp_path):
    keep = ["results.json", ".hidden", ".results.json.tmp", "a.abcdefgh.tmp", ".x.short.tmp"]
    stale = [".results.json.ab_12xyz.tmp", ".model.pt.k9r2m0qq.tmp", ".a.b.c.zzzzzzzz.tmp"]
    for name in keep + stale:
        (tmp_path / name).write_text("x")
    (tmp_path / "jobs").mkdir()
    nested = tmp_path / "jobs" / ".j.json.abcdefgh.tmp"
    nested.write_text("x")
    removed = remove_stale_temps(tmp_path)
    assert sorted(p.name for p in removed) == sorted(stale)
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([*keep, "jobs"])
    assert nested.exists()  # subfolders are the caller's to name


def test_remove_stale_temps_by_target_name(tmp_path):
    for name in (".model.pt.abcdefgh.tmp", ".model.v2.pt.abcdefgh.tmp", ".m.csv.abcdefgh.tmp"):
        (tmp_path / name).write_text("x")
    removed = remove_stale_temps(tmp_path, ["model.pt", "m.csv"])
    assert sorted(p.name for p in removed) == [".m.csv.abcdefgh.tmp", ".model.pt.abcdefgh.tmp"]
    assert (tmp_path / ".model.v2.pt.abcdefgh.tmp").exists()
    assert remove_stale_temps(tmp_path / "missing") == []

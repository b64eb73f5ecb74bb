"""Crash and concurrency safety of the output folder, with real processes.

A `noiseproof compare` subprocess is killed with SIGKILL at several points (during training,
between jobs, while writing a checkpoint, while writing results.json); each time the next run
resumes, and the final results.json equals an uninterrupted run's, job by job. A second run
into a folder in use is refused naming the holder; files follow the umask; a job record that
is not ours is refused under --resume; a bad --out writes nothing.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import stat
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
from click.testing import CliRunner

from helpers import digits_grid
from noiseproof.atomic import TEMP_PATTERN
from noiseproof.cli import cli

GRID = digits_grid(transfers=3, epochs=4)
ENV = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
CLOCK = {"seconds", "wall_seconds", "train_seconds"}

# `noiseproof compare ...` that SIGKILLs itself inside the atomic write of one file: its
# temporary file is complete on disk, the rename has not happened (test code, not a library hook)
KILL_WHILE_WRITING = textwrap.dedent(
    """
    import os, signal, sys
    target = sys.argv.pop(1)
    real_fsync = os.fsync
    def fsync(fd):
        if os.path.basename(os.readlink(f"/proc/self/fd/{fd}")).startswith(f".{target}."):
            os.kill(os.getpid(), signal.SIGKILL)
        real_fsync(fd)
    os.fsync = fsync
    sys.argv[0] = "noiseproof"
    from noiseproof.cli import main
    main()
    """
)

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="needs /proc, flock")


def start(out: Path, *extra: str, kill_writing: str | None = None, umask: int = -1):
    """A `noiseproof compare` of the tiny grid into `out` as a subprocess (output to a log)."""
    prefix = ["-c", KILL_WHILE_WRITING, kill_writing] if kill_writing else ["-m", "noiseproof"]
    log = (out.parent / f"{out.name}.log").open("a")
    return subprocess.Popen(
        [sys.executable, *prefix, "compare", *GRID, "--out", str(out), *extra],
        stdout=log,
        stderr=subprocess.STDOUT,
        env=ENV,
        umask=umask,
    )


def wait_for(condition, child: subprocess.Popen, timeout: float = 120.0) -> None:
    """Poll `condition` every millisecond until it holds; fail if the child ends first."""
    deadline = time.monotonic() + timeout
    while not condition():
        assert child.poll() is None, f"the run ended (rc {child.returncode}) before the point"
        assert time.monotonic() < deadline, "timed out waiting for the kill point"
        time.sleep(0.001)


def kill9(child: subprocess.Popen) -> None:
    """SIGKILL (works on a stopped process too) and reap."""
    child.send_signal(signal.SIGKILL)
    assert child.wait(timeout=30) == -signal.SIGKILL


def clock_free(value):
    """`value` without wall-clock fields, at any depth."""
    if isinstance(value, dict):
        return {k: clock_free(v) for k, v in value.items() if k not in CLOCK}
    if isinstance(value, list):
        return [clock_free(v) for v in value]
    return value


def temps(out: Path) -> list[Path]:
    """Temporary files of noiseproof.atomic anywhere under `out`."""
    return [p for p in out.rglob("*") if TEMP_PATTERN.match(p.name)]


def records(out: Path) -> dict[str, dict]:
    """The finished job records of a run, by file name, without clock fields."""
    return {p.name: clock_free(json.loads(p.read_text())) for p in (out / "jobs").glob("*.json")}


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    """An uninterrupted run, with umask 027."""
    out = tmp_path_factory.mktemp("reference") / "run"
    child = start(out, umask=0o027)
    assert child.wait(timeout=300) == 0, (out.parent / "run.log").read_text()
    return out


def test_outputs_follow_the_umask(reference):
    for path in [reference, *reference.rglob("*")]:
        mode = stat.S_IMODE(path.stat().st_mode)
        assert mode == (0o750 if path.is_dir() else 0o640), (path, oct(mode))


def test_kill9_at_every_stage_then_resume_equals_uninterrupted_run(reference, tmp_path):
    out = tmp_path / "run"
    want = clock_free(json.loads((reference / "results.json").read_text()))
    started = time.monotonic()

    # 1. during training: stopped as soon as config.yaml exists, before any checkpoint
    child = start(out)
    wait_for(lambda: (out / "config.yaml").exists(), child)
    child.send_signal(signal.SIGSTOP)
    try:
        assert not list(out.glob("checkpoints/*.pt"))
        # meanwhile a second real process running into the same folder is refused in one line
        for argv in (
            ["compare", *GRID, "--out", str(out), "--resume"],
            ["evaluate", str(reference / "checkpoints" / "standard-seed0.pt"), "--out", str(out)],
            ["attack", str(reference / "checkpoints" / "standard-seed0.pt"), "--out", str(out)],
            ["landscape", str(reference / "checkpoints" / "standard-seed0.pt"), "--out", str(out)],
            ["correct", "--dataset", "digits", "--no-progress", "--out", str(out)],
        ):
            result = CliRunner().invoke(cli, argv)
            assert result.exit_code == 2, (argv[0], result.output)
            line = result.output.strip()
            assert "\n" not in line and line.startswith("error: "), line
            assert f"pid {child.pid}" in line and "compare" in line and "since" in line, line
    finally:
        kill9(child)
    assert not list(out.glob("checkpoints/*.pt")) and not list(out.glob("jobs/*.json"))

    # 2. between jobs: right after the first job record appears
    child = start(out, "--resume")
    wait_for(lambda: any((out / "jobs").glob("*.json")), child)
    kill9(child)
    done = records(out)
    assert done and all(
        done[name] == rec for name, rec in records(reference).items() if name in done
    )

    # 3. while writing the second method's checkpoint (its temp file left behind)
    child = start(out, "--resume", kill_writing="noise_injection-seed0.pt")
    assert child.wait(timeout=300) == -signal.SIGKILL
    assert [p.parent.name for p in temps(out)] == ["checkpoints"]
    assert not (out / "checkpoints" / "noise_injection-seed0.pt").exists()

    # 4. while writing results.json, every job record written
    child = start(out, "--resume", kill_writing="results.json")
    assert child.wait(timeout=300) == -signal.SIGKILL
    assert [p.parent for p in temps(out)] == [
        out
    ]  # the checkpoint's was removed on taking the lock
    assert records(out) == records(reference)
    assert not (out / "results.json").exists()

    # then --resume finishes: results.json equal to the uninterrupted run's, job by job
    child = start(out, "--resume")
    assert child.wait(timeout=300) == 0, (tmp_path / "run.log").read_text()
    got = clock_free(json.loads((out / "results.json").read_text()))
    assert len(got["jobs"]) == len(want["jobs"]) == 4
    for mine, theirs in zip(got["jobs"], want["jobs"], strict=True):
        assert mine == theirs
    assert got == want
    assert temps(out) == [] and not (out / ".noiseproof.lock").exists()
    print(f"kill -9 at 4 points and 5 runs: {time.monotonic() - started:.1f} s")


def test_train_checkpoint_is_locked(tmp_path):
    target = tmp_path / "m.pt"
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sys, time\nfrom noiseproof.outputs import output_file\n"
            "with output_file(sys.argv[1]):\n    print('holding', flush=True)\n    time.sleep(120)",
            str(target),
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout.readline().strip() == "holding"
        result = CliRunner().invoke(cli, ["train", "--dataset", "digits", "--out", str(target)])
        assert result.exit_code == 2, result.output
        assert f"pid {holder.pid}" in result.output and str(target) in result.output
    finally:
        kill9(holder)
    assert not target.exists()


@pytest.fixture
def finished(reference, tmp_path):
    """A copy of the reference run's folder, to damage."""
    out = tmp_path / "run"
    shutil.copytree(reference, out)
    return out


def resume(out: Path):
    """`compare --resume` of the tiny grid in this process."""
    return CliRunner().invoke(cli, ["compare", *GRID, "--out", str(out), "--resume"])


def refused_naming(result, path: Path, *words: str) -> None:
    """Exit 2 with one line that names `path`, says to delete it, and holds `words`."""
    assert result.exit_code == 2, result.output
    line = result.output.strip()
    assert "\n" not in line and line.startswith("error: "), line
    assert str(path) in line and "delete it" in line, line
    assert all(word in line for word in words), line


def job(out: Path, method: str, level: str) -> Path:
    return out / "jobs" / f"{method}__relative_gaussian__{level}__seed0.json"


def test_truncated_job_record_is_refused(reference, finished):
    path = job(finished, "standard", "0.5")
    path.write_bytes(path.read_bytes()[:100])
    refused_naming(resume(finished), path, "truncated")
    path.unlink()  # as the message says: deleted, it is recomputed, identical
    assert resume(finished).exit_code == 0
    assert records(finished) == records(reference)


@pytest.mark.parametrize("content", [b"\xff\xfe\x00garbage", b"", b"[1, 2]", b'"text"'])
def test_non_json_or_foreign_job_record_is_refused(finished, content):
    path = job(finished, "noise_injection", "0")
    path.write_bytes(content)
    refused_naming(resume(finished), path)


@pytest.mark.parametrize(
    ("key", "value"),
    [("method", "standard"), ("noise", "lognormal"), ("level", 0.25), ("seed", 1)],
)
def test_job_record_of_another_job_is_refused(finished, key, value):
    path = job(finished, "noise_injection", "0.5")
    record = json.loads(path.read_text())
    record[key] = value
    path.write_text(json.dumps(record))
    refused_naming(resume(finished), path, "another job", key)


def test_job_record_from_another_config_is_refused(finished):
    path = job(finished, "standard", "0")
    record = json.loads(path.read_text())
    record["config"]["train"]["lr"] = 0.5
    path.write_text(json.dumps(record))
    refused_naming(resume(finished), path, "config")


def test_checkpoint_of_another_method_is_refused(finished):
    ckpt = finished / "checkpoints" / "noise_injection-seed0.pt"
    shutil.copy(finished / "checkpoints" / "standard-seed0.pt", ckpt)
    refused_naming(resume(finished), ckpt, "label")


@pytest.mark.parametrize(
    "argv",
    [
        ["compare", *GRID],
        ["train", "--dataset", "digits", "--epochs", "1"],
        ["correct", "--dataset", "digits"],
        ["attack", "CKPT"],
        ["landscape", "CKPT"],
        ["evaluate", "CKPT"],
    ],
)
@pytest.mark.parametrize("bad", ["", "FILE"])
def test_bad_out_is_one_line_and_writes_nothing(reference, tmp_path, monkeypatch, argv, bad):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "FILE").write_text("mine")
    if argv[0] == "train" and bad == "FILE":
        bad = "."  # train's --out is a file: a folder is the mistake there
    ckpt = str(reference / "checkpoints" / "standard-seed0.pt")
    argv = [ckpt if a == "CKPT" else a for a in argv]
    result = CliRunner().invoke(cli, [*argv, "--out", bad])
    assert result.exit_code == 2, result.output
    line = result.output.strip()
    assert "\n" not in line and line.startswith("error: --out"), line
    assert sorted(os.listdir(tmp_path)) == ["FILE"]
    assert (tmp_path / "FILE").read_text() == "mine"

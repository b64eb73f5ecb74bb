"""A Ray worker killed with SIGKILL in the middle of a job (a training at its 3rd step, an
evaluation at its 3rd tensor drawn: the `dies_once` plugin of this folder) is retried by Ray
(`executor.retries`), and the run's results.json equals, job by job, that of a local run of
the same grid; without retries the killed jobs are reported by name. Real processes: the
`noiseproof` command, the local Ray instance it starts, its workers."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("ray")

pytestmark = [pytest.mark.xdist_group("ray"), pytest.mark.usefixtures("ray_alone")]  # conftest.py

FOLDER = "NOISEPROOF_TEST_DIE_IN"
"""dies_once.FOLDER (not imported here: its components would join this process's registries)."""

HERE = Path(__file__).parent
BIN = Path(sys.executable).parent
GRID = [
    "--dataset",
    "digits",
    "--model",
    "mlp",
    "--methods",
    "standard,dies_once",
    "--noise",
    "relative_gaussian_dies_once",
    "--levels",
    "0,0.5",
    "--transfers",
    "6",
    "--epochs",
    "1",
    "--seed",
    "0",
    "--no-progress",
    "--set",
    "train.batch_size=64",
]
CLOCKS = {"seconds", "wall_seconds", "train_seconds", "executor"}


def compare(out: Path, *options: str, die_in: Path | None = None):
    """`noiseproof --plugin dies_once compare GRID` in its own process (this folder on
    PYTHONPATH, so Ray's workers import the plugin too); dying only with `die_in`."""
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=str(HERE))
    env.pop("RAY_ADDRESS", None)
    env.pop(FOLDER, None)
    if die_in is not None:
        env[FOLDER] = str(die_in)
    args = [str(BIN / "noiseproof"), "--plugin", "dies_once", "compare", *GRID, *options]
    return subprocess.run(
        [*args, "--out", str(out)], capture_output=True, text=True, env=env, timeout=500
    )


def without_clocks(value):
    """`value` without wall-clock fields and the executor (which never changes numbers)."""
    if isinstance(value, dict):
        return {k: without_clocks(v) for k, v in value.items() if k not in CLOCKS}
    if isinstance(value, list):
        return [without_clocks(v) for v in value]
    return value


def results(folder: Path):
    return without_clocks(json.loads((folder / "results.json").read_text()))


def assert_killed(markers: Path) -> None:
    """Both kills happened, each in a worker process (not this test, not the driver), now gone."""
    for point in ("train", "evaluate"):
        pid = int((markers / point).read_text())
        assert pid != os.getpid()
        with pytest.raises(ProcessLookupError):
            os.kill(pid, 0)


def test_workers_killed_mid_job_are_retried_and_the_results_equal_a_local_run(tmp_path):
    local = compare(tmp_path / "local")
    assert local.returncode == 0, local.stderr
    markers = tmp_path / "markers"
    markers.mkdir()
    remote = compare(tmp_path / "ray", "--executor", "ray", die_in=markers)
    assert remote.returncode == 0, remote.stderr
    assert_killed(markers)
    expected, got = results(tmp_path / "local"), results(tmp_path / "ray")
    assert len(got["jobs"]) == 4
    for mine, theirs in zip(got["jobs"], expected["jobs"], strict=True):
        assert mine == theirs
    assert got == expected


def test_without_retries_the_killed_jobs_are_reported_by_name(tmp_path):
    markers = tmp_path / "markers"
    markers.mkdir()
    remote = compare(
        tmp_path / "ray", "--executor", "ray", "--set", "executor.retries=0", die_in=markers
    )
    assert remote.returncode == 2, remote.stderr
    assert_killed(markers)
    lines = remote.stderr.splitlines()
    assert "failed: train dies_once seed 0: WorkerCrashedError: " in "\n".join(lines)
    assert (
        "failed: evaluate dies_once seed 0 relative_gaussian_dies_once=0.5: "
        "not run: train dies_once seed 0 failed"
    ) in lines
    assert lines[-1].startswith("error: 4 job(s) failed (listed above); the 2 finished are kept")

"""A full disk mid-run: one line naming the file, every record written before it intact and
strict JSON, no temporary file left, and --resume completes once there is room. The disk is a
real tmpfs of 300 KiB (mounted for the test, as root; this workplace's machines run tests as
root), grown in place to let the run finish."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

ARGS = [
    "-q",
    "compare",
    "--dataset",
    "moons",
    "--set",
    "model={name: mlp, hidden: [16]}",
    "--methods",
    "standard,noise_injection",
    "--levels",
    "0,0.5",
    "--transfers",
    "10",
    "--epochs",
    "1",
]


def noiseproof(*args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    command = [sys.executable, "-m", "noiseproof", *args]
    return subprocess.run(command, capture_output=True, text=True, env=env, timeout=300)


@pytest.fixture
def small_disk(tmp_path):
    disk = tmp_path / "disk"
    disk.mkdir()
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=300k", "tmpfs", str(disk)])
    if mounted.returncode != 0:
        pytest.skip("mounting a tmpfs needs root (mount refused)")
    try:
        yield disk
    finally:
        subprocess.run(["umount", str(disk)], check=False)


def test_a_full_disk_is_one_line_and_resume_completes(small_disk):
    out = small_disk / "run"
    full = noiseproof(*ARGS, "--out", str(out))
    assert full.returncode == 2
    lines = full.stderr.strip().splitlines()
    assert len(lines) == 1 and "No space left on device" in lines[0] and str(out) in lines[0]
    records = sorted((out / "jobs").glob("*.json"))
    assert len(records) == 4  # every evaluation finished before the disk filled
    for path in records:
        json.loads(path.read_text(), parse_constant=lambda name: pytest.fail(name))
    assert not [p for p in out.rglob(".*.tmp")]  # atomic writes leave no half file
    subprocess.run(["mount", "-o", "remount,size=50m", "tmpfs", str(small_disk)], check=True)
    resumed = noiseproof(*ARGS, "--out", str(out), "--resume")
    assert resumed.returncode == 0, resumed.stderr
    assert (out / "report.html").is_file()
    results = json.loads((out / "results.json").read_text())["jobs"]
    kept = [json.loads(path.read_text()) for path in records]  # the records the full run wrote
    assert sorted(kept, key=key) == sorted(results, key=key)  # reused as they were


def key(record: dict) -> tuple:
    return record["method"], record["level"]

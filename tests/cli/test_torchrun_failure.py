"""A torchrun process killed mid-training: the run fails in one line and keeps what finished.

`torchrun --nproc_per_node 2 -m noiseproof compare` (2 CPU ranks, gloo) trains two methods;
once the first one's checkpoint is written, rank 1 is killed with SIGKILL while both ranks
train the second. Rank 0 must stop with one `error:` line naming the lost peer (no traceback
of ours), torchrun must exit non-zero, and the first checkpoint must load with
weights_only=True and pass noiseproof's digest check.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import torch

from noiseproof.training.checkpoints import load_checkpoint

TORCHRUN = Path(sys.executable).with_name("torchrun")


def free_port() -> int:
    """A TCP port nobody listens on now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def children(pid: int) -> list[int]:
    """The process ids whose parent is `pid` (read from /proc)."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:  # gone meanwhile
                continue
            if int(fields[1]) == pid:
                found.append(int(entry.name))
    return found


def rank_of(pid: int) -> int | None:
    """The RANK a torchrun worker was started with (None if it has none)."""
    for item in (Path("/proc") / str(pid) / "environ").read_bytes().split(b"\0"):
        if item.startswith(b"RANK="):
            return int(item[5:])
    return None


def test_a_rank_killed_mid_training_fails_in_one_line_and_keeps_the_checkpoint(tmp_path):
    out = tmp_path / "run"
    command = [str(TORCHRUN), "--nproc_per_node", "2", "--master_addr", "127.0.0.1"]
    command += ["--master_port", str(free_port()), "-m", "noiseproof", "compare"]
    command += ["--dataset", "digits", "--model", "mlp", "--methods", "standard,noise_injection"]
    command += ["--levels", "0", "--transfers", "2", "--epochs", "15", "--no-progress"]
    command += ["--set", "train.steps_per_epoch=10", "--out", str(out)]
    launch = subprocess.Popen(
        command,
        cwd=tmp_path,
        env={**os.environ, "OMP_NUM_THREADS": "1"},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    first = out / "checkpoints" / "standard-seed0.pt"
    try:
        deadline = time.monotonic() + 240
        while not first.exists():
            assert launch.poll() is None, launch.communicate()[1][-3000:]
            assert time.monotonic() < deadline, "no checkpoint written"
            time.sleep(0.02)
        ranks = {rank_of(pid): pid for pid in children(launch.pid)}
        os.kill(ranks[1], signal.SIGKILL)
        _, stderr = launch.communicate(timeout=120)
    finally:
        if launch.poll() is None:
            launch.kill()
            launch.wait()
    assert launch.returncode != 0
    errors = [line for line in stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1, stderr[-3000:]
    assert "a torchrun process stopped during training (rank 0 lost its peer" in errors[0]
    assert "run again with --resume" in errors[0]
    # torchrun's own report follows; none of noiseproof's code appears in a traceback
    assert not [line for line in stderr.splitlines() if "/noiseproof/" in line and "File" in line]
    assert not (out / "checkpoints" / "noise_injection-seed0.pt").exists()  # killed mid-way
    raw = torch.load(first, weights_only=True)
    state, meta = load_checkpoint(first)
    assert meta["method"]["name"] == "standard"
    assert set(state) == set(raw["state"]) and state
    assert not list((out / "checkpoints").glob(".*.tmp"))

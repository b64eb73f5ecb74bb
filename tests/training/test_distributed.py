"""Data-parallel training with real processes: torchrun starts 2 CPU ranks (gloo).

The library scenarios run in one torchrun launch of tests/training/ddp_worker.py (module
fixture); the command-line ones run `torchrun -m noiseproof train` itself, then read the
checkpoint with `noiseproof evaluate`. Every launch gets a free port and OMP_NUM_THREADS=1.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from click.testing import CliRunner

from helpers import tiny_data
from noiseproof.cli import cli
from noiseproof.data.batching import global_batch_sizes, steps_per_epoch, train_batches
from noiseproof.methods import methods
from noiseproof.training.trainer import train

HERE = Path(__file__).resolve().parent
TORCHRUN = Path(sys.executable).with_name("torchrun")


def free_port() -> int:
    """A TCP port nobody listens on now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def torchrun(*args: str, cwd: Path, timeout: float = 120) -> subprocess.CompletedProcess:
    """`torchrun --nproc_per_node 2 ARGS` on a free port, one thread per rank."""
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(HERE.parent)}
    command = [str(TORCHRUN), "--nproc_per_node", "2", "--master_addr", "127.0.0.1"]
    return subprocess.run(
        [*command, "--master_port", str(free_port()), *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


@pytest.fixture(scope="module")
def worker(tmp_path_factory) -> Path:
    """The folder the 2 ranks of ddp_worker.py wrote."""
    out = tmp_path_factory.mktemp("ddp")
    done = torchrun(str(HERE / "ddp_worker.py"), str(out), cwd=out)
    assert done.returncode == 0, done.stderr[-3000:]
    return out


def test_each_rank_takes_its_share_of_the_same_global_batches():
    data = tiny_data(n=37)  # batches 8, 8, 8, 8, 5; with 4 ranks 5 splits 2, 1, 1, 1
    whole = list(train_batches(data, 8, torch.Generator().manual_seed(3)))
    for world in (2, 4):
        shares = [
            list(train_batches(data, 8, torch.Generator().manual_seed(3), rank=r, world=world))
            for r in range(world)
        ]
        assert [len(s) for s in shares] == [len(whole)] * world
        assert steps_per_epoch(data, 8, None, world) == len(whole)
        for step, (x, y) in enumerate(whole):
            assert sum(len(s[step][1]) for s in shares) == len(y)
            for r in range(world):
                assert torch.equal(shares[r][step][0], x[r::world])
                assert torch.equal(shares[r][step][1], y[r::world])
    assert global_batch_sizes(37, 8) == [8, 8, 8, 8, 5]
    assert global_batch_sizes(33, 8, world=2) == [8, 8, 8, 8]  # 1 example: not for 2 ranks
    dropped = list(train_batches(tiny_data(n=33), 8, torch.Generator(), rank=1, world=2))
    assert [len(y) for _, y in dropped] == [4, 4, 4, 4]


def test_two_ranks_train_like_one_process(worker):
    from ddp_worker import EQUIVALENCE, plain_net

    ranks = [torch.load(worker / f"equivalence-rank{r}.pt") for r in (0, 1)]
    model = plain_net()
    start = {k: v.clone() for k, v in model.state_dict().items()}
    result = train(model, tiny_data(n=99), methods.create("standard"), EQUIVALENCE, progress=False)
    for name, tensor in model.state_dict().items():
        assert torch.equal(ranks[0]["state"][name], ranks[1]["state"][name]), name
        assert torch.allclose(ranks[0]["state"][name], tensor, atol=1e-6), name
        assert not torch.allclose(start[name], tensor, atol=1e-2), name  # it did train
    for ours, theirs in zip(ranks[0]["history"], result.history, strict=True):
        assert ours["loss"] == pytest.approx(theirs["loss"], rel=1e-6)
        assert ours["val_accuracy"] == theirs["val_accuracy"]


def test_every_registered_method_steps_in_step_on_both_ranks(worker):
    from ddp_worker import batchnorm_net

    start = batchnorm_net().state_dict()
    for name in [*methods.names(), "hardware_aware-stuck"]:
        rank0, rank1 = (torch.load(worker / f"{name}-rank{r}.pt") for r in (0, 1))
        assert rank0["best"] == rank1["best"], name
        for key, tensor in rank0["state"].items():  # weights and BatchNorm statistics
            assert torch.equal(tensor, rank1["state"][key]), f"{name}: {key}"
        assert not torch.equal(rank0["state"]["1.weight"], start["1.weight"]), name


def test_a_batch_size_the_ranks_cannot_share_is_one_line(worker, tmp_path):
    for r in (0, 1):
        text = (worker / f"refused-rank{r}.txt").read_text()
        assert text.startswith("batch_size 33 is not divisible by the 2 torchrun processes")
        assert "\n" not in text
    done = torchrun(
        "-m", "noiseproof", "train", "--dataset", "digits", "--method", "standard",
        "--set", "train.batch_size=33",
        "--out", "m.pt", cwd=tmp_path,
    )  # fmt: skip
    assert done.returncode != 0
    line = "error: train.batch_size 33 is not divisible by the 2 torchrun processes"
    assert sum(line in row for row in done.stderr.splitlines()) >= 1, done.stderr[-2000:]
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("method", ["noise_injection", "adversarial"])
def test_torchrun_train_writes_one_checkpoint_that_evaluate_reads(method, tmp_path):
    done = torchrun(
        "-m", "noiseproof", "train", "--dataset", "digits", "--model", "mlp",
        "--method", method, "--epochs", "1", "--set", "train.steps_per_epoch=3",
        "--set", "train.batch_size=32", "--no-progress", "--out", "m.pt",
        cwd=tmp_path,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stderr.count(f"trained {method} seed 0") == 1  # rank 0 speaks, rank 1 is quiet
    written = sorted(str(p.relative_to(tmp_path)) for p in tmp_path.rglob("*") if p.is_file())
    assert written == ["m.history.csv", "m.pt"]  # by rank 0 alone, its lock file removed
    out = tmp_path / "eval"
    args = ["--levels", "0.1", "--transfers", "2", "--out", str(out), "--no-progress"]
    result = CliRunner().invoke(cli, ["evaluate", str(tmp_path / "m.pt"), *args])
    assert result.exit_code == 0, result.output
    jobs = json.loads((out / "results.json").read_text())["jobs"]
    assert [(j["method"], j["level"]) for j in jobs] == [(method, 0.1)]


def test_compare_under_torchrun_trains_with_both_ranks_and_rank_0_writes(tmp_path):
    grid = ["--dataset", "digits", "--model", "mlp", "--levels", "0,0.5", "--transfers", "6"]
    grid += ["--epochs", "2", "--no-progress", "--methods", "standard"]
    out = tmp_path / "ddp"
    done = torchrun("-m", "noiseproof", "compare", *grid, "--out", str(out), cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    one = tmp_path / "one"
    subprocess.run(
        [str(Path(sys.executable).with_name("noiseproof")), "compare", *grid, "--out", str(one)],
        check=True,
        capture_output=True,
        env={**os.environ, "OMP_NUM_THREADS": "1"},
    )
    ddp, single = (json.loads((p / "results.json").read_text()) for p in (out, one))
    assert [j["level"] for j in ddp["jobs"]] == [0.0, 0.5]
    assert sorted(p.name for p in (out / "checkpoints").iterdir()) == ["standard-seed0.pt"]
    # the same global batches: `standard` on 2 ranks trains the 1-process weights (float
    # tolerance), so its clean accuracy is the same up to a flipped near-tie
    for mine, theirs in zip(ddp["jobs"], single["jobs"], strict=True):
        assert abs(mine["clean_accuracy"] - theirs["clean_accuracy"]) <= 1 / 359

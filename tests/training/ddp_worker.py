"""One rank of the data-parallel tests (tests/training/test_distributed.py), run by torchrun.

`torchrun --nproc_per_node 2 tests/training/ddp_worker.py OUT` (with tests/ on PYTHONPATH)
joins the gloo process group and, on every rank, writes into OUT:

- equivalence-rank<r>.pt: `standard` trained over whole epochs of uneven batches (the last one
  split 2 + 1), with its history and kept epoch, to compare with one process;
- <method>-rank<r>.pt: two steps of every registered method (and hardware_aware with stuck
  devices), on a model with BatchNorm, with `select: noisy`;
- refused-rank<r>.txt: the message of a batch size the ranks cannot share.
"""

from __future__ import annotations

import sys
from pathlib import Path

import torch
from torch import nn

from helpers import tiny_data
from noiseproof.errors import NoiseproofError
from noiseproof.methods import methods
from noiseproof.noise import noise_models
from noiseproof.training.config import TrainConfig
from noiseproof.training.distributed import process_group, rank
from noiseproof.training.trainer import train

EQUIVALENCE = TrainConfig(
    epochs=2, batch_size=32, optimizer="sgd", lr=0.1, momentum=0.9, schedule="constant"
)
"""Whole epochs of 99 examples: batches 32, 32, 32, 3 (the last shared 2 + 1 on 2 ranks)."""

STEPS = TrainConfig(epochs=1, steps_per_epoch=2, batch_size=16, select="noisy", select_transfers=2)
"""Two steps of a method, the epoch kept by validation under noise."""

METHOD_SETTINGS = {"adversarial": {"n_steps": 2}, "awp": {"n_steps": 2}, "wvat": {"p": 0.5}}
"""Cheaper settings of the slow methods (their code paths are the same)."""


def plain_net() -> nn.Module:
    """An MLP without BatchNorm (whose batch statistics would differ on a rank's share)."""
    torch.manual_seed(0)
    return nn.Sequential(
        nn.Flatten(), nn.Linear(64, 16), nn.ReLU(), nn.Linear(16, 16), nn.ReLU(), nn.Linear(16, 3)
    )


def batchnorm_net() -> nn.Module:
    """An MLP with a BatchNorm layer (buffers the ranks must agree on)."""
    torch.manual_seed(0)
    return nn.Sequential(
        nn.Flatten(),
        nn.Linear(64, 16),
        nn.BatchNorm1d(16),
        nn.ReLU(),
        nn.Linear(16, 16),
        nn.ReLU(),
        nn.Linear(16, 3),
    )


def saved(model: nn.Module, result, path: Path) -> None:
    """The state dict, history and kept epoch of one training run."""
    torch.save(
        {"state": model.state_dict(), "history": result.history, "best": result.best_epoch}, path
    )


def main(out: Path) -> None:
    """Every scenario, on this rank."""
    torch.set_num_threads(1)
    with process_group("cpu"):
        r = rank()
        data = tiny_data(n=99)
        noise = noise_models.create({"name": "relative_gaussian", "zeta": 0.1})
        model = plain_net()
        result = train(model, data, methods.create("standard"), EQUIVALENCE, progress=False)
        saved(model, result, out / f"equivalence-rank{r}.pt")
        cases = [
            (name, methods.create({"name": name, **METHOD_SETTINGS.get(name, {})}), noise)
            for name in methods.names()
        ]
        stuck = noise_models.create({"name": "stuck_at", "p": 0.2})
        cases.append(("hardware_aware-stuck", methods.create("hardware_aware"), stuck))
        for name, method, chip_noise in cases:
            model = batchnorm_net()
            result = train(model, data, method, STEPS, noise=chip_noise, seed=1, progress=False)
            saved(model, result, out / f"{name}-rank{r}.pt")
        try:
            train(plain_net(), data, methods.create("standard"), TrainConfig(batch_size=33))
        except NoiseproofError as error:
            (out / f"refused-rank{r}.txt").write_text(str(error))


if __name__ == "__main__":
    main(Path(sys.argv[1]))

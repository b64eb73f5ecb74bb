"""Data-parallel training under torchrun: the process group, this process's rank, and the few
collectives the trainer needs (DistributedDataParallel does the gradient all-reduce).

`torchrun --nproc_per_node N -m noiseproof train ...` starts N processes with WORLD_SIZE,
RANK, LOCAL_RANK, MASTER_ADDR and MASTER_PORT set; `process_group` joins them (gloo on the CPU,
NCCL on CUDA, each process on cuda:LOCAL_RANK) and leaves the group on exit, also on errors.
Inside it the trainer wraps the model in DistributedDataParallel, each rank takes its share of
every global batch, and only rank 0 (`is_main`) writes. Outside torchrun every function here is
the one-process identity: rank 0 of 1, no collective.

A process of the launch that stops (killed, out of memory) fails the run in one line: a
collective that finds its peer gone raises `LaunchStopped` (`peers_kept`), and so does the
SIGTERM torchrun sends every other process once one has failed (`process_group`); the jobs
that finished, their checkpoints written atomically, are kept for `--resume`.
"""

from __future__ import annotations

import contextlib
import signal
from collections.abc import Iterator, Mapping
from typing import Any

import torch
import torch.distributed as dist
from torch import Tensor, nn
from torch.nn.parallel import DistributedDataParallel

from noiseproof.devices import rank_device, resolve_device
from noiseproof.errors import LaunchStopped, NoiseproofError
from noiseproof.launch import launched, rank_from_env, world_size_from_env


def is_distributed() -> bool:
    """True inside an initialised process group of more than one process."""
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def rank() -> int:
    """This process's rank: in the process group when one is set up, else torchrun's RANK
    (0 outside torchrun)."""
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank()
    return rank_from_env()


def world_size() -> int:
    """How many processes train together: the process group's size when one is set up, else
    torchrun's WORLD_SIZE (1 outside torchrun)."""
    if dist.is_available() and dist.is_initialized():
        return dist.get_world_size()
    return world_size_from_env()


def is_main() -> bool:
    """True in the process that writes checkpoints, histories, logs and results (rank 0)."""
    return rank() == 0


def share() -> tuple[int, int]:
    """(rank, world size) of the process group that trains together; (0, 1) in one process."""
    return (rank(), world_size()) if is_distributed() else (0, 1)


def rank_keys() -> tuple[Any, ...]:
    """Extra keys for a per-rank random stream (`seeding.generator(seed, ..., *rank_keys())`):
    ('rank', r) under data-parallel training, none in one process (its streams unchanged)."""
    return ("rank", rank()) if is_distributed() else ()


def backend_for(device: torch.device) -> str:
    """The collective backend for a device: NCCL on CUDA, gloo on the CPU."""
    return "nccl" if device.type == "cuda" else "gloo"


@contextlib.contextmanager
def process_group(device: Any = "auto") -> Iterator[bool]:
    """Join the torchrun process group for the block (yields True) and leave it on exit, also
    when the block raises; outside torchrun, or when a group is already set up (its owner
    tears it down), a no-op yielding `is_distributed()`.

    device: the device the job trains on: a spec ('auto', 'cpu', 'cuda'...), resolved here to
    this process's device (cuda:LOCAL_RANK on CUDA), or a torch.device already resolved so
    (noiseproof.settings.RunSettings.device). It picks the backend (NCCL for CUDA, gloo
    otherwise) and, on CUDA, becomes this process's current device.
    """
    if not launched() or (dist.is_available() and dist.is_initialized()):
        yield is_distributed()
        return
    chosen = device if isinstance(device, torch.device) else rank_device(resolve_device(device))
    if chosen.type == "cuda":
        torch.cuda.set_device(chosen)
    dist.init_process_group(backend=backend_for(chosen))
    before = signal.signal(signal.SIGTERM, _stopped)
    try:
        yield True
    except BaseException:
        signal.signal(signal.SIGTERM, before)
        dist.destroy_process_group()
        raise
    signal.signal(signal.SIGTERM, before)
    # every rank done (rank 0 may still be writing) before any closes its connections: a peer
    # closing under another's gloo threads can abort that process
    dist.barrier()
    dist.destroy_process_group()


LOST_PEER = ("connection reset by peer", "connection closed by peer", "broken pipe", "nccl")
"""Words of a collective's error that mean a peer process is gone (gloo's socket errors,
NCCL's aborted or failed communicator)."""


def _stopped(signum: int, frame: Any) -> None:
    """SIGTERM under torchrun (sent to every process once one failed): one line, not a silent
    exit, and the finished jobs are kept."""
    raise LaunchStopped(
        f"torchrun stopped rank {rank()} (SIGTERM): another process of the launch failed or the "
        "launch was stopped; the finished jobs are kept: run again with --resume"
    )


@contextlib.contextmanager
def peers_kept(what: str) -> Iterator[None]:
    """Run a block of collectives (`what`: e.g. 'training'): inside a process group, an error
    saying a peer process is gone (`LOST_PEER`) becomes one `LaunchStopped` line naming this
    rank and the error's first line; any other error passes unchanged."""
    try:
        yield
    except RuntimeError as error:
        text = str(error).strip()
        if not is_distributed() or not any(word in text.lower() for word in LOST_PEER):
            raise
        # gloo's '[file.cc:line] Read error [host]:port: Connection reset by peer. Hint...'
        said = text.splitlines()[0].split("] ", 1)[-1].split(". ")[0][:160]
        raise LaunchStopped(
            f"a torchrun process stopped during {what} (rank {rank()} lost its peer: {said}); "
            "the finished jobs are kept: run again with --resume"
        ) from None


def check_divisible(batch_size: int, what: str = "train.batch_size") -> None:
    """One line unless every process of the process group can take an equal share of a
    `batch_size` global batch (nothing to check in one process)."""
    size = share()[1]
    if size > 1 and batch_size % size:
        raise NoiseproofError(
            f"{what} {batch_size} is not divisible by the {size} torchrun processes: each "
            f"takes batch_size / {size} examples of every global batch (use a multiple of {size})"
        )


def wrap(model: nn.Module, device: torch.device) -> DistributedDataParallel:
    """`model` (already on `device`) in DistributedDataParallel: rank 0's parameters and
    buffers copied to every rank now, gradients averaged over the ranks in every backward
    pass of a forward made through the wrapper.

    Buffers (BatchNorm statistics) are not broadcast at each forward, so methods may make a
    different number of forwards on each rank (e.g. `wvat`'s per-rank coin); `sync_buffers`
    copies rank 0's at the end of each epoch.
    """
    ids = [device.index] if device.type == "cuda" else None
    wrapper = DistributedDataParallel(model, device_ids=ids, forward_sync_buffers=False)
    wrapper.forwards_with_grad = 0  # type: ignore[assignment]  # our counter on the wrapper

    def count(module: Any, args: Any) -> None:
        if torch.is_grad_enabled():
            module.forwards_with_grad += 1

    wrapper.register_forward_pre_hook(count)
    return wrapper


def forwards_with_grad(wrapper: Any) -> int:
    """How many forwards with gradients were made through a `wrap`ped model so far (a step
    whose loss made none would not average its gradients: the trainer refuses it)."""
    return wrapper.forwards_with_grad


def sync_buffers(model: nn.Module) -> None:
    """Copy rank 0's buffers (BatchNorm running statistics...) to every rank (no-op in one
    process), so every rank validates and keeps the same model."""
    if not is_distributed():
        return
    with torch.no_grad():
        for buffer in model.buffers():
            dist.broadcast(buffer, src=0)


def summed(tensor: Tensor) -> Tensor:
    """`tensor` summed over the ranks, in place (returned as it is in one process)."""
    if is_distributed():
        dist.all_reduce(tensor, op=dist.ReduceOp.SUM)
    return tensor


def any_rank(mask: Tensor) -> Tensor:
    """A bool mask true where it is true on any rank (`mask` itself in one process)."""
    if not is_distributed():
        return mask
    flags = mask.to(torch.uint8)
    dist.all_reduce(flags, op=dist.ReduceOp.MAX)
    return flags.bool()


def from_main(values: Mapping[str, float], device: torch.device) -> dict[str, float]:
    """Rank 0's `values` on every rank (the same keys on all; `values` itself in one process),
    e.g. validation scores, so every rank keeps the same epoch. `device`: where the
    collective runs (the training device: CPU for gloo, the rank's GPU for NCCL)."""
    if not is_distributed() or not values:
        return dict(values)
    keys = list(values)
    carried = torch.tensor([values[k] for k in keys], dtype=torch.float64, device=device)
    dist.broadcast(carried, src=0)
    return dict(zip(keys, carried.tolist(), strict=True))

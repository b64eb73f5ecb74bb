"""Explicit, order-independent random streams: every draw takes a generator derived from keys.

noiseproof's own draws never touch the global random state. The user's modules may
(nn.Dropout, torch.rand in a forward, numpy or `random` in a transform): `global_rng` runs
such work inside a fork of every global generator seeded from the run's seed, so the same seed
gives the same numbers and the caller's global state is as it was afterwards.
"""

from __future__ import annotations

import contextlib
import hashlib
import random
from collections.abc import Iterator

import numpy as np
import torch


def derive_seed(seed: int, *keys: object) -> int:
    """A 63-bit seed that depends only on `seed` and `keys`, so jobs can run in any order."""
    text = repr((int(seed), *map(str, keys))).encode()
    return int.from_bytes(hashlib.sha256(text).digest()[:8], "little") & (2**63 - 1)


def generator(
    seed: int, *keys: object, device: torch.device | str | None = None
) -> torch.Generator:
    """A torch.Generator on `device` (None: the CPU) seeded with `derive_seed(seed, *keys)`.

    Same seed, keys and device give the same stream; the CPU and CUDA generators are different
    algorithms (Mersenne Twister vs Philox), so the same seed gives other numbers on each.

    >>> import torch, noiseproof as nf
    >>> a = torch.rand(3, generator=nf.generator(0, "chips"))
    >>> torch.equal(a, torch.rand(3, generator=nf.generator(0, "chips")))
    True
    >>> torch.equal(a, torch.rand(3, generator=nf.generator(0, "other")))
    False
    """
    return torch.Generator(device=torch.device(device or "cpu")).manual_seed(
        derive_seed(seed, *keys)
    )


def _cuda_index(device: torch.device) -> list[int]:
    """[the CUDA device's index] for a CUDA `device` (no index: the current one), else []."""
    if device.type != "cuda":
        return []
    return [device.index if device.index is not None else torch.cuda.current_device()]


def seed_global(seed: int, device: torch.device | str | None = None) -> None:
    """Seed the global generators a user's module may draw from with `seed`: torch's CPU one,
    the default one of `device` (a CUDA device or MPS; other CUDA devices are left alone),
    numpy's legacy global one (`seed` mod 2**32, its range) and Python's `random`: the three
    sources PyTorch's reproducibility notes name (docs.pytorch.org/docs/stable/notes/
    randomness.html)."""
    device = torch.device(device or "cpu")
    torch.default_generator.manual_seed(seed)
    for index in _cuda_index(device):
        torch.cuda.init()  # its default generators exist once CUDA is (a no-op after)
        torch.cuda.default_generators[index].manual_seed(seed)
    if device.type == "mps":
        torch.mps.manual_seed(seed)
    np.random.seed(seed % 2**32)
    random.seed(seed)


@contextlib.contextmanager
def global_rng(
    seed: int, *keys: object, device: torch.device | str | None = None
) -> Iterator[None]:
    """Run the body with the global generators seeded from `derive_seed(seed, "global", *keys)`
    (`seed_global`), then put every one back as it was, also when the body raises.

    torch's CPU and the device's states are forked with torch.random.fork_rng (the CUDA one of
    `device` only, so other GPUs are not initialised), MPS's, numpy's and Python's states saved
    and restored. A module drawing from the global state (nn.Dropout, torch.rand in forward)
    then gives the same numbers for the same seed, and the caller's own stream never moves.
    """
    device = torch.device(device or "cpu")
    python_state, numpy_state = random.getstate(), np.random.get_state()
    try:
        with torch.random.fork_rng(devices=_cuda_index(device), device_type="cuda"):
            mps_state = torch.mps.get_rng_state() if device.type == "mps" else None
            try:
                seed_global(derive_seed(seed, "global", *keys), device)
                yield
            finally:
                if mps_state is not None:
                    torch.mps.set_rng_state(mps_state)
    finally:
        random.setstate(python_state)
        np.random.set_state(numpy_state)

"""Explicit, order-independent random streams: every draw takes a generator derived from keys."""

from __future__ import annotations

import hashlib

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
    """
    return torch.Generator(device=torch.device(device or "cpu")).manual_seed(
        derive_seed(seed, *keys)
    )

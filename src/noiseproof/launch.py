"""Which process of a torchrun launch this is, read from the environment torchrun sets.

Kept free of torch so that the command line can ask before anything heavy is imported (only
rank 0 of a launch takes the output lock). noiseproof.training.distributed sets up the process
group from these values.
"""

from __future__ import annotations

import os


def _env_int(name: str, default: int) -> int:
    """The integer environment variable `name`, `default` when unset or empty."""
    value = os.environ.get(name, "").strip()
    return int(value) if value else default


def world_size_from_env() -> int:
    """WORLD_SIZE as torchrun sets it (1 when not launched by torchrun)."""
    return _env_int("WORLD_SIZE", 1)


def rank_from_env() -> int:
    """RANK as torchrun sets it (0 when not launched by torchrun)."""
    return _env_int("RANK", 0)


def local_rank_from_env() -> int:
    """LOCAL_RANK (the process's index on its machine) as torchrun sets it (0 when unset)."""
    return _env_int("LOCAL_RANK", 0)


def launched() -> bool:
    """True in a process that torchrun started as one of several (WORLD_SIZE > 1)."""
    return world_size_from_env() > 1


def is_main_process() -> bool:
    """True unless this is a torchrun process of rank > 0 (the one that writes is rank 0)."""
    return rank_from_env() == 0

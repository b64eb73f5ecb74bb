"""What a result was computed from: the checkpoint's digest, the data's fingerprint and the
job's config hash. Every job record names them under `inputs`, and a record whose inputs
differ from the run's is never reused (noiseproof.experiments.run_folder).

- checkpoint digest (`checkpoint_digest`): `training.checkpoints.state_digest` over the JSON
  of the checkpoint's `model` spec and `finish` record (what the weights are loaded into) and
  every tensor's name, dtype, shape and bytes. It names the network that was evaluated: a
  copy of the file elsewhere has the same digest; the file's path, its method label, its
  clocks and its training log do not enter it.
- data fingerprint (`data_fingerprint`): SHA-256 over the dataset spec (canonical JSON), then
  for each split (train, val, test) in turn: its targets y whole (dtype, shape and every
  byte), and of its inputs x (each tensor of a tuple or dict input, in order) the dtype, the
  shape and the bytes of rows 0 and N-1 and of every ceil(N/64)-th row (at most 66 rows);
  a streamed training split adds its length and input shape only. It costs milliseconds on
  MNIST and changes when a label changes anywhere or a sampled row changes.
- config hash (`config_hash`): SHA-256 of the job's own config slice as canonical JSON.

Attack and landscape records (of `compare`, and of the `attack` and `landscape` commands)
name the same three (`analysis_inputs`): the checkpoint analysed, the data it was analysed
on, and the hash of the analysis settings with what they were run with (seed, chip
selection, and in a `compare` the training's config slice).

Canonical JSON: sorted keys, no spaces, tuples as lists. Digests are 64 hex digits; messages
show the first 12.
"""

from __future__ import annotations

import hashlib
import json
import math
from typing import Any

import torch
from torch import Tensor

from noiseproof.data.base import Dataset
from noiseproof.inputs import leaves
from noiseproof.training.checkpoints import state_digest

SAMPLED_ROWS = 64
"""About how many evenly spaced input rows of each split the data fingerprint reads."""


def canonical(value: Any) -> str:
    """`value` as canonical JSON text: sorted keys, compact, tuples as lists."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), default=str)


def config_hash(job_config: dict[str, Any]) -> str:
    """SHA-256 hex digest of a job's config slice (canonical JSON)."""
    return hashlib.sha256(canonical(job_config).encode()).hexdigest()


def analysis_inputs(digest: str, fingerprint: str, settings: dict[str, Any]) -> dict[str, str]:
    """The `inputs` an attack or landscape record names: {'checkpoint': digest, 'data':
    fingerprint, 'config': config_hash(settings)} (`settings`: the analysis config and what
    it was run with)."""
    return {"checkpoint": digest, "data": fingerprint, "config": config_hash(settings)}


def checkpoint_digest(state: dict[str, Tensor], meta: dict[str, Any]) -> str:
    """The digest of the network a checkpoint holds (see the module docstring)."""
    network = canonical({"model": meta.get("model"), "finish": meta.get("finish")})
    return state_digest(network, state)


def _tensor_bytes(digest: Any, tensor: Tensor, rows: Tensor | None = None) -> None:
    """Feed dtype, shape and the bytes of `tensor` (only `rows` of it when given) to `digest`."""
    digest.update(f"{tensor.dtype}|{tuple(tensor.shape)}".encode())
    part = tensor.detach() if rows is None else tensor.detach()[rows.to(tensor.device)]
    part = part.cpu().contiguous().reshape(-1)
    digest.update(part.view(torch.uint8).numpy().tobytes())


def sampled_rows(n: int) -> Tensor:
    """Row indices the fingerprint reads of a split of `n` examples: 0, n-1 and every
    ceil(n/64)-th row."""
    if n == 0:
        return torch.zeros(0, dtype=torch.long)
    step = max(1, math.ceil(n / SAMPLED_ROWS))
    return torch.tensor(sorted({0, n - 1, *range(0, n, step)}), dtype=torch.long)


def data_fingerprint(spec: Any, data: Dataset) -> str:
    """SHA-256 hex digest of a dataset spec and a cheap sample of its loaded content (see the
    module docstring for exactly what is read)."""
    digest = hashlib.sha256(canonical(spec).encode())
    for split in ("train", "val", "test"):
        x, y = getattr(data, f"x_{split}"), getattr(data, f"y_{split}")
        digest.update(f"|{split}|".encode())
        _tensor_bytes(digest, y)
        if split == "train" and data.streamed:
            digest.update(f"streamed|{len(x)}|{data.input_shape}".encode())
            continue
        rows = sampled_rows(len(y))
        for tensor in leaves(x):
            _tensor_bytes(digest, tensor, rows)
    return digest.hexdigest()


def short(digest: str | None) -> str:
    """The first 12 hex digits of a digest, for messages ('unknown' for None)."""
    return digest[:12] if isinstance(digest, str) else "unknown"

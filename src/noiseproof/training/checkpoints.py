"""Checkpoints: a state_dict plus JSON metadata, written atomically, verified on load.

The file is a plain `torch.save` of {'format', 'meta' (JSON text), 'state' (tensors), 'digest'}
so it loads with `weights_only=True` (no code runs). The digest is a SHA-256 over the metadata
and every tensor's bytes: a file altered after saving is refused, not silently used.
"""

from __future__ import annotations

import hashlib
import io
import json
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from noiseproof.atomic import write_atomic
from noiseproof.errors import NoiseproofError

FORMAT = "noiseproof-checkpoint/1"


def state_digest(meta_json: str, state: dict[str, Tensor]) -> str:
    """SHA-256 hex digest of the metadata text and each tensor's name, dtype, shape and bytes."""
    digest = hashlib.sha256(meta_json.encode())
    for name in sorted(state):
        tensor = state[name].detach().cpu().contiguous()
        digest.update(f"{name}|{tensor.dtype}|{tuple(tensor.shape)}".encode())
        digest.update(tensor.reshape(-1).view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()


def save_checkpoint(path: str | Path, state: dict[str, Tensor], meta: dict[str, Any]) -> Path:
    """Atomically write `state` (a state_dict) with JSON-serialisable `meta` to `path`."""
    meta_json = json.dumps(meta, sort_keys=True)
    state = {k: v.detach().cpu() for k, v in state.items()}
    payload = {
        "format": FORMAT,
        "meta": meta_json,
        "state": state,
        "digest": state_digest(meta_json, state),
    }
    buffer = io.BytesIO()
    torch.save(payload, buffer)
    return write_atomic(path, lambda handle: handle.write(buffer.getvalue()))


def load_checkpoint(path: str | Path) -> tuple[dict[str, Tensor], dict[str, Any]]:
    """(state_dict, meta) from a checkpoint; NoiseproofError if missing, unreadable or altered."""
    path = Path(path)
    if not path.is_file():
        raise NoiseproofError(f"checkpoint not found: {path}")
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # torch raises many types for corrupt or foreign files
        reason = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise NoiseproofError(f"checkpoint {path} is unreadable: {reason[:200]}") from None
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        raise NoiseproofError(f"checkpoint {path} is not a noiseproof checkpoint")
    meta_json, state = payload.get("meta"), payload.get("state")
    if not isinstance(meta_json, str) or not isinstance(state, dict):
        raise NoiseproofError(f"checkpoint {path} is incomplete (no metadata or weights)")
    if payload.get("digest") != state_digest(meta_json, state):
        raise NoiseproofError(f"checkpoint {path} was altered after saving (digest mismatch)")
    return state, json.loads(meta_json)

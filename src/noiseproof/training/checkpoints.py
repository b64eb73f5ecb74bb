"""Checkpoints: a state_dict plus JSON metadata, written atomically, verified on load.

The file is a plain `torch.save` of {'format', 'meta' (JSON text), 'state' (tensors), 'digest'}
so it loads with `weights_only=True` (no code runs). The digest is a SHA-256 over the metadata
and every tensor's bytes: a file altered after saving is refused, not silently used. A valid
digest proves nothing about who wrote the file, so the metadata is also checked against
`CheckpointMeta` on load: forged or foreign metadata is refused in one line naming the field.
"""

from __future__ import annotations

import hashlib
import io
import json
from pathlib import Path
from typing import Annotated, Any

import torch
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator
from torch import Tensor

from noiseproof.atomic import write_atomic
from noiseproof.data.vocabulary import check_vocabulary
from noiseproof.errors import NoiseproofError
from noiseproof.plugins import require_plugins

FORMAT = "noiseproof-checkpoint/1"

Count = Annotated[int, Field(ge=1, strict=True)]


class CheckpointMeta(BaseModel):
    """What a trained model's checkpoint must say about itself; other keys are kept as written.

    model, method: component specs ({'name': ..., **params}); dataset: a spec or a name;
    input_shape / num_outputs: the shapes the weights were built for (a list of shapes, or a dict
    of them, for a model taking several inputs); chip: the selection; finish: the record of what
    the method deployed after training (e.g. CorrectNet's compensation), rebuilt on load.
    """

    model_config = ConfigDict(extra="allow", strict=True)

    model: dict[str, Any]
    method: dict[str, Any]
    dataset: dict[str, Any] | str
    input_shape: list[Count] | list[list[Count]] | dict[str, list[Count]]
    num_outputs: Count
    chip: dict[str, Any]
    label: str | None = None
    seed: int | None = None
    train: dict[str, Any] | None = None
    train_noise: dict[str, Any] | None = None
    finish: dict[str, Any] | None = None
    history: list[dict[str, Any]] | None = None

    @field_validator("model", "method")
    @classmethod
    def _named(cls, value: dict[str, Any]) -> dict[str, Any]:
        if not isinstance(value.get("name"), str):
            raise ValueError("must be a component spec with a string 'name'")
        return value

    @field_validator("dataset")
    @classmethod
    def _dataset(cls, value: dict[str, Any] | str) -> dict[str, Any] | str:
        if isinstance(value, dict) and not isinstance(value.get("name"), str):
            raise ValueError("must be a dataset name or a spec with a string 'name'")
        return value


def check_meta(path: str | Path, meta: Any) -> dict[str, Any]:
    """`meta` if it satisfies `CheckpointMeta`, else one NoiseproofError line naming the field."""
    if not isinstance(meta, dict):
        raise NoiseproofError(f"checkpoint {path}: metadata must be a mapping")
    try:
        CheckpointMeta.model_validate(meta)
    except ValidationError as error:
        item = error.errors()[0]
        field = str(item["loc"][0]) if item["loc"] else "metadata"
        got = f" (got {type(meta[field]).__name__})" if field in meta else ""
        raise NoiseproofError(
            f"checkpoint {path}: metadata field '{field}': {item['msg']}{got}"
        ) from None
    return meta


def check_fits(
    meta: dict[str, Any],
    input_shape: tuple[int, ...],
    num_outputs: int,
    what: str,
    vocabulary: dict | None = None,
) -> None:
    """NoiseproofError unless a checkpoint's input shape and output count match the data's,
    and the tokenizer it was trained with (meta 'vocabulary') is the data's `vocabulary`.

    Called before any forward pass, so a mismatch is one line naming both shapes instead of a
    torch shape error deep in evaluation.
    """
    try:
        check_vocabulary(meta.get("vocabulary"), vocabulary, what)
    except ValueError as error:
        raise NoiseproofError(str(error)) from None
    saved, given = plain(meta["input_shape"]), plain(input_shape)
    if (saved, meta["num_outputs"]) != (given, num_outputs):
        raise NoiseproofError(
            f"{what} was trained on inputs {saved} with {meta['num_outputs']} outputs, but the "
            f"dataset has inputs {given} with {num_outputs} outputs"
        )


def plain(shape: Any) -> Any:
    """A shape as JSON stores it: tuples become lists, recursively (dicts keep their keys)."""
    if isinstance(shape, dict):
        return {key: plain(value) for key, value in shape.items()}
    if isinstance(shape, list | tuple):
        return [plain(value) for value in shape]
    return shape


def state_digest(meta_json: str, state: dict[str, Tensor]) -> str:
    """SHA-256 hex digest of the metadata text and each tensor's name, dtype, shape and bytes."""
    digest = hashlib.sha256(meta_json.encode())
    for name in sorted(state):
        tensor = state[name].detach().cpu().contiguous()
        digest.update(f"{name}|{tensor.dtype}|{tuple(tensor.shape)}".encode())
        digest.update(tensor.reshape(-1).view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()


def save_checkpoint(path: str | Path, state: dict[str, Tensor], meta: dict[str, Any]) -> Path:
    """Atomically write `state` (a state_dict) with JSON-serialisable `meta` to `path`.

    >>> import tempfile, torch, noiseproof as nf
    >>> path = tempfile.mkdtemp() + "/weights.pt"
    >>> _ = nf.save_checkpoint(path, {"w": torch.ones(2)}, {"note": "any JSON"})
    >>> nf.load_checkpoint(path, trained=False)  # weights_only load, digest checked
    ({'w': tensor([1., 1.])}, {'note': 'any JSON'})
    """
    if not isinstance(state, dict) or not all(
        isinstance(k, str) and isinstance(v, Tensor) for k, v in state.items()
    ):
        raise TypeError("state must be a dict of name -> tensor (a state_dict)")
    if not isinstance(meta, dict):
        raise TypeError(f"meta must be a dict, got {type(meta).__name__}")
    try:
        meta_json = json.dumps(meta, sort_keys=True)
    except (TypeError, ValueError) as error:
        raise TypeError(f"meta must be JSON-serialisable: {error}") from None
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


def load_checkpoint(
    path: str | Path, *, trained: bool = True
) -> tuple[dict[str, Tensor], dict[str, Any]]:
    """(state_dict, meta) from a checkpoint; NoiseproofError if missing, unreadable or altered.

    trained: the checkpoint holds a trained model, so its metadata must satisfy
    `CheckpointMeta` (False: any JSON metadata, for a plain state_dict store).

    >>> import tempfile, torch, noiseproof as nf
    >>> path = tempfile.mkdtemp() + "/weights.pt"
    >>> _ = nf.save_checkpoint(path, {"w": torch.zeros(1)}, {})
    >>> state, meta = nf.load_checkpoint(path, trained=False)
    >>> state["w"], meta
    (tensor([0.]), {})
    """
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
    if not all(isinstance(k, str) and isinstance(v, Tensor) for k, v in state.items()):
        raise NoiseproofError(f"checkpoint {path}: weights must map names to tensors")
    if payload.get("digest") != state_digest(meta_json, state):
        raise NoiseproofError(f"checkpoint {path} was altered after saving (digest mismatch)")
    try:
        meta = json.loads(meta_json)
    except ValueError:
        raise NoiseproofError(f"checkpoint {path}: metadata is not valid JSON") from None
    require_plugins(path, meta)  # its plugins present, or one line naming them (none imported)
    return state, check_meta(path, meta) if trained else meta

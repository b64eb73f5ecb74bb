"""Images made temporal for spiking networks: spike encodings over T steps (`encode`) and images
read as sequences of rows or pixels (`sequence`), giving inputs with time on dimension 1.

An encoded image batch is [B, T, C, H, W]; a sequence is [B, T, features]. Encodings:

- rate: s_t ~ Bernoulli(x) independently at every step t, x the intensity in [0, 1] (Poisson
  rate coding, e.g. Diehl & Cook 2015; snntorch.spikegen.rate), drawn from a seeded generator;
- latency: one spike at t = round((1 - x)(T - 1)), none where x = 0 (snntorch.spikegen.latency
  with linear=True, normalize=True, clip=True: time-to-first-spike, brighter fires earlier);
- direct: the analog image x repeated at every step (Rueckauer et al. 2017's analog input).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import replace
from typing import Any, Literal

import torch
from pydantic import BaseModel, ConfigDict, Field
from torch import Tensor

from noiseproof.data.base import Dataset
from noiseproof.seeding import generator

ENCODINGS = ("rate", "latency", "direct")
SEQUENCES = ("rows", "pixels")
SPLITS = ("train", "val", "test")
RATE_CHUNK = 1024
"""Examples encoded per draw: bounds the temporary uniform tensor; part of the stream's
definition (the same seed and chunk give the same spikes)."""

ENCODE_HELP = (
    "spike-encode the images over time, giving x [N, T, C, H, W]: {kind: rate|latency|direct, "
    "steps: T, seed: 0, max_gb: 4}; rate and latency need intensities in [0, 1] (no normalize), "
    "no augment"
)
SEQUENCE_HELP = (
    "read each image [C, H, W] as a sequence: rows (H steps of W*C features, [N, H, W*C]) or "
    "pixels (H*W steps of C features, [N, H*W, C]); no augment"
)


class EncodeSpec(BaseModel):
    """The `encode` key of an image dataset: which spike code, over how many steps."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    kind: Literal["rate", "latency", "direct"] = Field(..., description="rate, latency or direct")
    steps: int = Field(..., ge=1, description="time steps T")
    seed: int = Field(0, description="seed of the rate code's Bernoulli draws")
    max_gb: float = Field(
        4.0, gt=0, description="refuse an encoding whose float32 splits exceed this many GB"
    )


def rate(x: Tensor, steps: int, gen: torch.Generator) -> Tensor:
    """Rate code [N, T, ...] of intensities x [N, ...] in [0, 1]: s_t = 1 with probability x,
    independently per step and element (Bernoulli; snntorch.spikegen.rate), drawn from `gen`
    RATE_CHUNK examples at a time."""
    out = torch.empty(len(x), steps, *x.shape[1:], dtype=torch.float32)
    for start in range(0, len(x), RATE_CHUNK):
        part = x[start : start + RATE_CHUNK].unsqueeze(1)
        draws = torch.rand((len(part), steps, *x.shape[1:]), generator=gen)
        out[start : start + RATE_CHUNK] = draws < part
    return out


def latency(x: Tensor, steps: int) -> Tensor:
    """Latency code [N, T, ...] of intensities x [N, ...] in [0, 1]: one spike at step
    round((1 - x)(T - 1)) (linear time-to-first-spike, as snntorch.spikegen.latency with
    linear=True, normalize=True), none where x == 0."""
    times = torch.round((1.0 - x) * (steps - 1)).long().clamp_(0, steps - 1)
    out = torch.zeros(len(x), steps, *x.shape[1:], dtype=torch.float32)
    out.scatter_(1, times.unsqueeze(1), (x > 0).float().unsqueeze(1))
    return out


def direct(x: Tensor, steps: int) -> Tensor:
    """Direct (analog) input [N, T, ...]: x at every step, as a broadcast view of x (no copy)."""
    return x.unsqueeze(1).expand(len(x), steps, *x.shape[1:])


def encode(x: Tensor, spec: EncodeSpec, gen: torch.Generator) -> Tensor:
    """x [N, ...] encoded as `spec` says, [N, T, ...]; rate and latency refuse intensities
    outside [0, 1] with a ValueError."""
    if spec.kind == "direct":
        return direct(x, spec.steps)
    if len(x) and (float(x.min()) < 0.0 or float(x.max()) > 1.0):
        low, high = float(x.min()), float(x.max())
        raise ValueError(
            f"encode '{spec.kind}' needs intensities in [0, 1], got values in "
            f"[{low:.4g}, {high:.4g}] (normalize must be false)"
        )
    return rate(x, spec.steps, gen) if spec.kind == "rate" else latency(x, spec.steps)


def to_sequence(x: Tensor, order: str) -> Tensor:
    """Images x [N, C, H, W] as sequences: 'rows' gives [N, H, W*C] (step h holds row h, its
    features pixel-major with channels fastest), 'pixels' gives [N, H*W, C] (raster order)."""
    if x.dim() != 4:
        raise ValueError(
            f"sequence needs images [N, C, H, W], got inputs of shape {tuple(x.shape)}"
        )
    n, c, h, w = x.shape
    pixels = x.permute(0, 2, 3, 1)  # [N, H, W, C]
    if order == "rows":
        return pixels.reshape(n, h, w * c)
    return pixels.reshape(n, h * w, c)


def check_size(counts: Sequence[int], per_example: int, max_gb: float, hint: str) -> None:
    """Refuse (ValueError) when `counts` examples of `per_example` float32 values exceed
    `max_gb` GB (1e9 bytes); `hint` says which settings shrink it."""
    need = sum(counts) * per_example * 4 / 1e9
    if need > max_gb:
        raise ValueError(
            f"{' + '.join(map(str, counts))} examples x {per_example} values as float32 need "
            f"{need:.2f} GB, over max_gb {max_gb:g}: lower {hint}, or raise max_gb"
        )


def encoded(data: Dataset, spec: EncodeSpec) -> Dataset:
    """`data` with every split's images encoded (the rate code of split s drawn from
    generator(spec.seed, 'encode', s)); images must be one tensor [N, C, H, W] in memory."""
    x_train = data.x_train
    if not isinstance(x_train, Tensor) or x_train.dim() != 4:
        shape = tuple(x_train.shape) if isinstance(x_train, Tensor) else type(x_train).__name__
        raise ValueError(f"encode needs images [N, C, H, W], got inputs {shape}")
    if spec.kind != "direct":
        counts = [len(getattr(data, f"y_{split}")) for split in SPLITS]
        per_example = spec.steps * math.prod(x_train.shape[1:])
        check_size(counts, per_example, spec.max_gb, "max_train, max_test or encode.steps")
    splits: dict[str, Any] = {  # replace's keywords
        f"x_{split}": encode(
            getattr(data, f"x_{split}"), spec, generator(spec.seed, "encode", split)
        )
        for split in SPLITS
    }
    return replace(data, **splits)


def sequenced(data: Dataset, order: str) -> Dataset:
    """`data` with every split's images [N, C, H, W] read as sequences (`to_sequence`)."""
    splits: dict[str, Any] = {  # replace's keywords
        f"x_{split}": to_sequence(getattr(data, f"x_{split}"), order) for split in SPLITS
    }
    return replace(data, **splits)

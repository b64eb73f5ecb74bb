"""Which chip is calibrated: chip K of a Monte Carlo run, drawn exactly as the evaluation of
that run draws it, and the calibrated chip saved as a module."""

from __future__ import annotations

import copy
from collections.abc import Mapping

import torch
from torch import Tensor, nn

from noiseproof.calibration.fit import Calibration
from noiseproof.calibration.model import Calibrated
from noiseproof.evaluation.chipstream import ChipStream, base_seed
from noiseproof.noise.base import NoiseModel
from noiseproof.seeding import generator


def chip_stream(
    noise: NoiseModel, clean: Mapping[str, Tensor], seed: int, noise_label: str
) -> ChipStream:
    """The chip stream of the Monte Carlo run with (seed, noise label, level) over the clean
    on-chip tensors: the stream the evaluation of `compare` / `evaluate` draws
    (experiments.jobs.evaluate_chips: a generator seeded by (seed, 'transfers', label, level)
    on the tensors' device gives the stream's base seed; noiseproof.evaluation.chipstream)."""
    device = next(iter(clean.values())).device
    gen = generator(seed, "transfers", noise_label, noise.level, device=device)
    return ChipStream(noise, dict(clean), base_seed(gen), device)


def drawn_chip(
    noise: NoiseModel, clean: Mapping[str, Tensor], seed: int, noise_label: str, index: int
) -> dict[str, Tensor]:
    """The on-chip tensors of chip `index` of that run (`chip_stream`), copied."""
    if isinstance(index, bool) or not isinstance(index, int) or index < 0:
        raise ValueError(f"chip must be an integer >= 0, got {index!r}")
    stream = chip_stream(noise, clean, seed, noise_label)
    return {name: t.clone() for name, t in stream.chip(index).items()}


def calibrated_module(
    model: nn.Module, chip: Mapping[str, Tensor], calibration: Calibration
) -> nn.Module:
    """A copy of `model` holding the chip's tensors and the calibration's digital tensors,
    wrapped in `Calibrated` with its column corrections (the model itself when calibration
    fitted no column: only norms)."""
    programmed = copy.deepcopy(model)
    own = {**dict(programmed.named_buffers()), **dict(programmed.named_parameters())}
    with torch.no_grad():
        for name, tensor in {**calibration.state, **chip}.items():
            own[name].copy_(tensor)
    if not calibration.columns:
        return programmed
    return Calibrated(programmed, list(calibration.columns)).set_columns(calibration.columns)

"""The `calibration:` settings: which digital parameters are re-fitted, on how many examples,
with how many gradient steps after the closed-form fit (noiseproof.calibration.fit)."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator

PARAMS = ("gain", "bias", "norm", "affine")
"""What calibration may re-fit: `gain` a digital gain per output column of every on-chip MVM
layer (the ADC gain), `bias` a digital offset per output column, `norm` the BatchNorm running
statistics (re-estimated on the chip, AdaBN), `affine` the BatchNorm/LayerNorm/GroupNorm
per-channel affine (weight, bias)."""

DEFAULT_PARAMS = ("gain", "bias")
"""Measured by benchmarks/calibration_params.py (docs/calibration.md): on PCM chips read a day
and a year after programming, gain and bias together recover most of the accuracy (a digits
ResNet-20 from 9 % to 88-91 %, an MLP to its clean accuracy); norm (AdaBN) made no chip
better there, affine changed nothing after gain and bias, and 20 gradient steps added at most
1.3 points at several times the cost."""


class CalibrationConfig(BaseModel):
    """The `calibration:` section: re-fit a programmed chip's digital parameters (its analog
    weights stay as programmed) on `examples` examples of the training split."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    examples: int = Field(256, ge=1, strict=True, description="calibration examples per chip")
    params: tuple[str, ...] = Field(
        DEFAULT_PARAMS, min_length=1, description=f"what is re-fitted: {', '.join(PARAMS)}"
    )
    steps: int = Field(
        0, ge=0, strict=True, description="gradient steps on the task loss after the fit"
    )
    lr: float = Field(
        1e-3, gt=0, allow_inf_nan=False, description="Adam learning rate of those steps"
    )

    @field_validator("params", mode="before")
    @classmethod
    def _known(cls, value: Any) -> Any:
        names = [value] if isinstance(value, str) else value
        if isinstance(names, list | tuple):
            unknown = [n for n in names if n not in PARAMS]
            if unknown:
                raise ValueError(f"unknown parameter {unknown[0]!r}: choose from {list(PARAMS)}")
            return tuple(dict.fromkeys(names))
        return value

"""The `calibration:` settings: which digital parameters are re-fitted, on how many examples,
with how many gradient steps after the closed-form fit (noiseproof.calibration.fit)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, ConfigDict, Field, field_validator

if TYPE_CHECKING:
    from noiseproof.analog import AnalogForward

PARAMS = ("gain", "bias", "norm", "affine", "input_range")
"""What calibration may re-fit: `gain` a digital gain per output column of every on-chip MVM
layer (the ADC gain), `bias` a digital offset per output column, `norm` the BatchNorm running
statistics (re-estimated on the chip, AdaBN), `affine` the BatchNorm/LayerNorm/GroupNorm
per-channel affine (weight, bias), `input_range` the calibrated input and ADC ranges of the
analog forward (`forward.input_range` / `forward.adc_range` mode calibrated), re-calibrated on
the chip's own weights."""

DEFAULT_PARAMS = ("gain", "bias")
"""Measured by benchmarks/calibration_params.py (docs/calibration.md): on PCM chips read a day
and a year after programming, gain and bias together recover most of the accuracy (a digits
ResNet-20 from 9 % to 88-91 %, an MLP to its clean accuracy); norm (AdaBN) made no chip
better there, affine changed nothing after gain and bias, 20 gradient steps added at most
1.3 points at several times the cost, and input_range (under an analog forward) changed
nothing beyond the chip-to-chip spread."""


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


def check_calibration(settings: CalibrationConfig, forward: AnalogForward | None) -> None:
    """ValueError (one line) for a calibration the run's analog `forward` cannot serve: bit-
    sliced weights (their chips are drawn slice by slice, not yet calibrated), or
    `input_range` without a calibrated input or ADC range to re-fit."""
    if forward is not None and forward.slicing is not None:
        raise ValueError(
            "calibration: chips with bit-sliced weights (forward.bits_per_slice) are not "
            "calibrated yet: remove one of them"
        )
    if "input_range" in settings.params and not calibrated_ranges(forward):
        raise ValueError(f"calibration.params: {NO_RANGES}")


NO_RANGES = (
    "input_range re-calibrates forward.input_range or forward.adc_range with mode calibrated, "
    "and the forward has neither"
)


def calibrated_ranges(forward: AnalogForward | None) -> bool:
    """Whether `forward` calibrates its input or ADC ranges (what `input_range` re-fits)."""
    return forward is not None and (forward.input_mode == "calibrated" or forward.adc_calibrated)

"""The model a calibrated chip's checkpoint describes (`noiseproof calibrate`)."""

from __future__ import annotations

from typing import Any

from pydantic import Field
from torch import nn

from noiseproof.calibration.model import Calibrated
from noiseproof.models.base import ModelSpec, models


@models.register("calibrated")
class CalibratedModel(ModelSpec):
    """A model with a digital gain and offset per output column after its on-chip MVM layers:
    what `noiseproof calibrate` saves (docs/calibration.md)."""

    base: dict[str, Any] = Field(..., description="the calibrated model's own spec")
    layers: tuple[str, ...] = Field(..., min_length=1, description="layers with a correction")

    def build(self, input_shape: tuple[int, ...], num_outputs: int) -> nn.Module:
        """The base model with a gain 1, offset 0 correction after each of `layers`."""
        return Calibrated(models.create(self.base).create(input_shape, num_outputs), self.layers)

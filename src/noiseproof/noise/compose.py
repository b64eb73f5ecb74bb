"""Composition: several effects applied one after another within one transfer."""

from __future__ import annotations

from typing import Any, ClassVar, Self

import torch
from pydantic import Field, field_validator, model_validator
from torch import Tensor

from noiseproof.chip import Params
from noiseproof.noise.base import NoiseModel, noise_models


@noise_models.register("chain")
class Chain(NoiseModel):
    """Apply `models` in order (e.g. quantize then relative_gaussian then stuck_at).

    The chain's sweep level is the level of member number `sweep`; the others stay fixed.
    """

    level_field: ClassVar[str] = "level"
    models: tuple[NoiseModel, ...] = Field(..., min_length=1, description="noise models, in order")
    sweep: int = Field(0, ge=0, description="index of the member whose level a sweep varies")

    @field_validator("models", mode="before")
    @classmethod
    def _build_members(cls, value: Any) -> tuple[NoiseModel, ...]:
        return tuple(noise_models.create(member) for member in value)

    @model_validator(mode="after")
    def _check_sweep(self) -> Self:
        if self.sweep >= len(self.models):
            raise ValueError(f"sweep={self.sweep} but the chain has {len(self.models)} models")
        return self

    @property
    def level(self) -> float:
        return self.models[self.sweep].level

    def with_level(self, level: float) -> Self:
        """A copy whose swept member has level `level`."""
        members = list(self.models)
        members[self.sweep] = members[self.sweep].with_level(level)
        return type(self)(models=tuple(members), sweep=self.sweep)

    def spec(self) -> dict:
        return {"name": "chain", "models": [m.spec() for m in self.models], "sweep": self.sweep}

    @torch.no_grad()
    def sample(self, params: Params, generator: torch.Generator) -> Params:
        """Each member's transfer applied to the previous member's output."""
        for member in self.models:
            params = member.sample(params, generator)
        return params

    @torch.no_grad()
    def sample_with_faults(
        self, params: Params, generator: torch.Generator
    ) -> tuple[Params, dict[str, Tensor]]:
        """The chain's transfer and, per tensor, the elements any member left stuck."""
        stuck: dict[str, Tensor] = {}
        for member in self.models:
            params, masks = member.sample_with_faults(params, generator)
            for name, mask in masks.items():
                stuck[name] = stuck[name] | mask if name in stuck else mask
        return params, stuck

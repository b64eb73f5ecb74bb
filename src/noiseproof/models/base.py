"""The model spec base class: validated hyperparameters that build an nn.Module for a dataset."""

from __future__ import annotations

from abc import abstractmethod
from typing import ClassVar

from pydantic import BaseModel, ConfigDict
from torch import nn

from noiseproof.registry import Registry


class ModelSpec(BaseModel):
    """Base of every built-in model: fields are its hyperparameters."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    registered_name: ClassVar[str] = ""

    @abstractmethod
    def build(self, input_shape: tuple[int, ...], num_outputs: int) -> nn.Module:
        """A freshly initialised module mapping [B, *input_shape] to [B, num_outputs] logits."""

    def spec(self) -> dict:
        return {"name": self.registered_name, **self.model_dump(mode="json")}


models: Registry[ModelSpec] = Registry("model")

"""The model spec base class: validated hyperparameters that build an nn.Module for a dataset."""

from __future__ import annotations

from abc import abstractmethod
from typing import ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field
from torch import nn

from noiseproof.chip import select_output
from noiseproof.registry import Registry


class ModelSpec(BaseModel):
    """Base of every registered model: fields are its hyperparameters.

    `output` names the entry of the module's output that holds the logits when its forward
    returns a dict (a key), a tuple (an index) or an output object (an attribute).
    """

    model_config = ConfigDict(extra="forbid", frozen=True)
    registered_name: ClassVar[str] = ""
    reads: ClassVar[Literal["features", "tokens"]] = "features"
    """What the built module reads: real-valued features [B, *input_shape] (images, vectors,
    sequences of frames) or integer token ids [B, T] (language models, transformers)."""

    output: str | int | None = Field(
        None, description="key or index of the logits in a dict/tuple output (None: a tensor)"
    )

    @abstractmethod
    def build(self, input_shape: tuple[int, ...], num_outputs: int) -> nn.Module:
        """A freshly initialised module mapping [B, *input_shape] to [B, num_outputs] logits."""

    def create(self, input_shape: tuple[int, ...], num_outputs: int) -> nn.Module:
        """`build`, the `output` entry selected as the logits (noiseproof.chip.select_output)."""
        return select_output(self.build(input_shape, num_outputs), self.output)

    def spec(self) -> dict:
        """{'name': ..., **params}; `output` only when set."""
        dumped = self.model_dump(mode="json")
        if self.output is None:
            dumped.pop("output")
        return {"name": self.registered_name, **dumped}


models: Registry[ModelSpec] = Registry("model")

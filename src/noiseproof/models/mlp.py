"""Fully connected networks, and the activation choice shared by the small built-in models."""

from __future__ import annotations

import math
from typing import Annotated, Literal

from pydantic import Field
from torch import nn

from noiseproof.models.base import ModelSpec, models

Activation = Literal["relu", "sigmoid", "tanh"]
Init = Literal["default", "xavier", "kaiming"]

_ACTIVATIONS: dict[str, type[nn.Module]] = {"relu": nn.ReLU, "sigmoid": nn.Sigmoid, "tanh": nn.Tanh}


def activation(name: Activation) -> nn.Module:
    """A fresh, non-in-place activation module by name (the sigmoid of Rumelhart et al. 1986)."""
    return _ACTIVATIONS[name]()


def initialise(model: nn.Module, init: Init) -> nn.Module:
    """Re-draw the weights of every Linear and Conv layer of `model`, in module order, from the
    global generator that the caller seeds; returns `model`.

    "default": PyTorch's own init, left as built. "xavier": weights U(-a, a), a = sqrt(6 /
    (fan_in + fan_out)) (Glorot & Bengio 2010), biases 0.01 (the Drolet et al. 2023 authors'
    code). "kaiming": weights N(0, 2 / fan_in) (He et al. 2015, for ReLU), biases 0.
    """
    if init == "default":
        return model
    for layer in model.modules():
        if not isinstance(layer, nn.Linear | nn.Conv1d | nn.Conv2d):
            continue
        if init == "xavier":
            nn.init.xavier_uniform_(layer.weight)
            bias = 0.01
        else:
            nn.init.kaiming_normal_(layer.weight, nonlinearity="relu")
            bias = 0.0
        if layer.bias is not None:
            nn.init.constant_(layer.bias, bias)
    return model


@models.register("mlp")
class MLP(ModelSpec):
    """Multilayer perceptron on the flattened input (Rumelhart, Hinton & Williams 1986).

    hidden=(8,), activation="sigmoid" on a (2,) input with one output is the 2-8-1 network of
    Drolet et al. 2023; hidden=() is a linear (logistic-regression) model.
    """

    hidden: tuple[Annotated[int, Field(gt=0)], ...] = Field(
        (256, 256), description="width of each hidden layer, input to output"
    )
    activation: Activation = Field("relu", description="nonlinearity after each hidden layer")
    init: Init = Field(
        "default",
        description="PyTorch's default init, Xavier-uniform weights and biases 0.01 (the "
        "Drolet et al. 2023 authors' code) or Kaiming-normal weights and biases 0",
    )

    def build(self, input_shape: tuple[int, ...], num_outputs: int) -> nn.Module:
        """Flatten -> [Linear -> activation] per hidden width -> Linear to num_outputs.

        `init`: see `initialise` (drawn from the global generator that the caller seeds).
        """
        layers: list[nn.Module] = [nn.Flatten()]
        width = math.prod(input_shape)
        for size in self.hidden:
            layers += [nn.Linear(width, size), activation(self.activation)]
            width = size
        layers.append(nn.Linear(width, num_outputs))
        return initialise(nn.Sequential(*layers), self.init)

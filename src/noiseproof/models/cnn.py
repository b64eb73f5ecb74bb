"""Small convolutional classifiers: the Buechel et al. 2022 Fashion-MNIST CNN and LeNet-5."""

from __future__ import annotations

from itertools import pairwise
from typing import Annotated, Literal

import torch
from pydantic import Field
from torch import nn

from noiseproof.errors import NoiseproofError
from noiseproof.models.base import ModelSpec, models
from noiseproof.models.mlp import Activation, Init, activation, initialise


def image_shape(input_shape: tuple[int, ...], model: str) -> tuple[int, int, int]:
    """(channels, height, width) of an image input, or a NoiseproofError naming `model`."""
    if len(input_shape) != 3:
        shape = tuple(input_shape)
        raise NoiseproofError(f"model '{model}' needs (channels, height, width) input, got {shape}")
    channels, height, width = (int(d) for d in input_shape)
    return channels, height, width


def flat_features(features: nn.Module, input_shape: tuple[int, ...], model: str) -> int:
    """Size of `features` output per sample, found by a dry run on zeros in eval mode (a
    BatchNorm inside keeps its running statistics)."""
    training = features.training
    try:
        with torch.no_grad():
            return features.eval()(torch.zeros(1, *input_shape)).flatten(1).shape[1]
    except RuntimeError as error:
        raise NoiseproofError(
            f"model '{model}' cannot take inputs of shape {tuple(input_shape)}: {error}"
        ) from None
    finally:
        features.train(training)


def dense(widths: list[int]) -> list[nn.Module]:
    """Linear layers through `widths`, ReLU between them: the Buechel et al. 2022 dense head."""
    layers: list[nn.Module] = []
    for i, (fan_in, fan_out) in enumerate(pairwise(widths)):
        if i:
            layers.append(nn.ReLU(inplace=False))
        layers.append(nn.Linear(fan_in, fan_out))
    return layers


@models.register("cnn")
class BuechelCNN(ModelSpec):
    """Fashion-MNIST CNN of Buechel et al. 2022: 2 x [conv 4x4, max-pool, ReLU], dense 256-64.

    On 1x28x28 inputs: 28 -> 25 -> 13 -> 10 -> 5, so 64*5*5 = 1600 features feed the dense
    layers 1600-256-64-10 (493,642 parameters). Other input sizes get their own flat width.
    """

    channels: int = Field(64, gt=0, description="output channels of both convolutions")
    kernel_size: int = Field(4, gt=0, description="side of the square convolution kernels")
    hidden: tuple[Annotated[int, Field(gt=0)], ...] = Field(
        (256, 64), description="widths of the hidden dense layers"
    )
    batch_norm: bool = Field(
        False,
        description="BatchNorm after each convolution (Ioffe & Szegedy 2015; not the paper's)",
    )
    init: Init = Field(
        "default", description="weight init: PyTorch's default, xavier or kaiming (see mlp)"
    )

    def build(self, input_shape: tuple[int, ...], num_outputs: int) -> nn.Module:
        """Conv features then the dense head, flat width found by a dry run; `init` as
        noiseproof.models.mlp.initialise."""
        in_channels = image_shape(input_shape, "cnn")[0]
        features = nn.Sequential(
            *self._stage(in_channels), *self._stage(self.channels), nn.Flatten()
        )
        flat = flat_features(features, input_shape, "cnn")
        model = nn.Sequential(features, *dense([flat, *self.hidden, num_outputs]))
        return initialise(model, self.init)

    def _stage(self, in_channels: int) -> list[nn.Module]:
        norm = [nn.BatchNorm2d(self.channels)] if self.batch_norm else []
        return [
            nn.Conv2d(in_channels, self.channels, self.kernel_size, padding=0),
            *norm,
            nn.MaxPool2d(2, ceil_mode=True),
            nn.ReLU(inplace=False),
        ]


@models.register("lenet5")
class LeNet5(ModelSpec):
    """LeNet-5 (LeCun et al. 1998): conv 6@5x5, pool, conv 16@5x5, pool, dense 120-84.

    The first convolution pads by 2 so a 28x28 input plays the role of the original 32x32
    (16*5*5 = 400 flat features). pool="avg", activation="tanh" is closest to the original.
    """

    activation: Activation = Field("relu", description="nonlinearity after each hidden layer")
    pool: Literal["max", "avg"] = Field("max", description="2x2 subsampling: max or average")

    def build(self, input_shape: tuple[int, ...], num_outputs: int) -> nn.Module:
        """Conv features then 120-84-num_outputs, flat width found by a dry run."""
        in_channels = image_shape(input_shape, "lenet5")[0]
        pool = nn.MaxPool2d if self.pool == "max" else nn.AvgPool2d
        features = nn.Sequential(
            nn.Conv2d(in_channels, 6, 5, padding=2),
            activation(self.activation),
            pool(2),
            nn.Conv2d(6, 16, 5),
            activation(self.activation),
            pool(2),
            nn.Flatten(),
        )
        flat = flat_features(features, input_shape, "lenet5")
        return nn.Sequential(
            features,
            nn.Linear(flat, 120),
            activation(self.activation),
            nn.Linear(120, 84),
            activation(self.activation),
            nn.Linear(84, num_outputs),
        )

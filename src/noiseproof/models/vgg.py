"""A small configurable VGG for 28x28 and 32x32 images."""

from __future__ import annotations

from typing import Annotated

from pydantic import Field
from torch import nn

from noiseproof.models.base import ModelSpec, models
from noiseproof.models.cnn import image_shape


@models.register("vgg")
class VGG(ModelSpec):
    """Small VGG (Simonyan & Zisserman 2015): stages of 3x3 convs + 2x2 max-pool, dense head.

    Each entry of `channels` is one stage of `convs_per_stage` [conv 3x3 (+BatchNorm), ReLU]
    followed by max-pooling (skipped once the feature map is 1x1). Global average pooling
    then feeds Linear(hidden) -> ReLU -> Linear(num_outputs), so any input size works.
    """

    channels: tuple[Annotated[int, Field(gt=0)], ...] = Field(
        (32, 64, 128), min_length=1, description="output channels of each stage"
    )
    convs_per_stage: int = Field(1, gt=0, description="3x3 convolutions per stage")
    batchnorm: bool = Field(True, description="BatchNorm after every convolution")
    hidden: int = Field(256, gt=0, description="width of the classifier's hidden layer")

    def build(self, input_shape: tuple[int, ...], num_outputs: int) -> nn.Module:
        """Conv stages, global average pool, then the two-layer classifier."""
        channels, height, width = image_shape(input_shape, "vgg")
        layers: list[nn.Module] = []
        for out in self.channels:
            for _ in range(self.convs_per_stage):
                layers.append(nn.Conv2d(channels, out, 3, padding=1, bias=not self.batchnorm))
                if self.batchnorm:
                    layers.append(nn.BatchNorm2d(out))
                layers.append(nn.ReLU(inplace=False))
                channels = out
            if min(height, width) > 1:
                layers.append(nn.MaxPool2d(2))
                height, width = height // 2, width // 2
        return nn.Sequential(
            *layers,
            nn.AdaptiveAvgPool2d(1),
            nn.Flatten(),
            nn.Linear(channels, self.hidden),
            nn.ReLU(inplace=False),
            nn.Linear(self.hidden, num_outputs),
        )

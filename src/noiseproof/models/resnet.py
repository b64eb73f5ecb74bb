"""Residual networks (He et al. 2016): CIFAR-style ResNet-20 and ResNet-32 (section 4.2) and
ResNet-18 (table 1), ImageNet style or with a CIFAR stem."""

from __future__ import annotations

from typing import ClassVar, Literal

from pydantic import Field
from torch import Tensor, nn

from noiseproof.models.base import ModelSpec, models
from noiseproof.models.cnn import image_shape


def conv_bn(in_channels: int, out_channels: int, kernel: int, stride: int) -> nn.Sequential:
    """Bias-free convolution ('same' padding) followed by BatchNorm, as in He et al. 2016."""
    return nn.Sequential(
        nn.Conv2d(in_channels, out_channels, kernel, stride, padding=kernel // 2, bias=False),
        nn.BatchNorm2d(out_channels),
    )


class BasicBlock(nn.Module):
    """Two 3x3 conv-BN layers plus a shortcut, then ReLU (He et al. 2016, figure 2).

    The shortcut is the identity, or a 1x1 conv + BN projection where the stride or the
    channel count changes (option B of the paper).
    """

    def __init__(self, in_channels: int, out_channels: int, stride: int) -> None:
        super().__init__()
        self.conv1 = conv_bn(in_channels, out_channels, 3, stride)
        self.relu1 = nn.ReLU(inplace=False)
        self.conv2 = conv_bn(out_channels, out_channels, 3, 1)
        self.shortcut = (
            conv_bn(in_channels, out_channels, 1, stride)
            if stride != 1 or in_channels != out_channels
            else nn.Identity()
        )
        self.relu2 = nn.ReLU(inplace=False)

    def forward(self, x: Tensor) -> Tensor:
        """relu(F(x) + shortcut(x))."""
        return self.relu2(self.conv2(self.relu1(self.conv1(x))) + self.shortcut(x))


def residual_network(
    stem: list[nn.Module], width: int, stages: int, blocks: int, num_outputs: int
) -> nn.Sequential:
    """stem, `stages` stages of `blocks` BasicBlocks of widths w, 2w, 4w... (each stage after
    the first starts with stride 2), global average pool, Linear; convolutions He-initialised
    (fan_out), BatchNorm at weight 1 and bias 0, as in He et al. 2016 (and torchvision)."""
    layers, channels = list(stem), width
    for stage in range(stages):
        out = width * 2**stage
        for block in range(blocks):
            layers.append(BasicBlock(channels, out, 2 if stage > 0 and block == 0 else 1))
            channels = out
    layers += [nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(channels, num_outputs)]
    model = nn.Sequential(*layers)
    for module in model.modules():
        if isinstance(module, nn.Conv2d):
            nn.init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu")
    return model


def cifar_resnet(in_channels: int, num_outputs: int, blocks: int, width: int) -> nn.Sequential:
    """ResNet with 6 * blocks + 2 layers: stem, 3 stages of widths w/2w/4w, pool, Linear."""
    stem = [conv_bn(in_channels, width, 3, 1), nn.ReLU(inplace=False)]
    return residual_network(stem, width, 3, blocks, num_outputs)


class CifarResNet(ModelSpec):
    """Base of the CIFAR ResNets (He et al. 2016, section 4.2); subclasses fix the depth."""

    blocks: ClassVar[int]
    width: int = Field(16, gt=0, description="channels of the first stage (doubled per stage)")

    def build(self, input_shape: tuple[int, ...], num_outputs: int) -> nn.Module:
        """The network for inputs with input_shape[0] channels; any spatial size works."""
        in_channels = image_shape(input_shape, self.registered_name)[0]
        return cifar_resnet(in_channels, num_outputs, self.blocks, self.width)


@models.register("resnet20")
class ResNet20(CifarResNet):
    """ResNet-20 for small images: 3 stages of 3 basic blocks (He et al. 2016), ~0.27M params."""

    blocks: ClassVar[int] = 3


@models.register("resnet32")
class ResNet32(CifarResNet):
    """ResNet-32 for small images: 3 stages of 5 basic blocks (He et al. 2016), ~0.46M params."""

    blocks: ClassVar[int] = 5


def resnet18(in_channels: int, num_outputs: int, stem: str, width: int) -> nn.Sequential:
    """ResNet-18 (He et al. 2016, table 1): stem, 4 stages of 2 BasicBlocks of widths
    w, 2w, 4w, 8w (64-128-256-512), global average pool, Linear.

    stem 'imagenet': 7x7 stride-2 conv-BN-ReLU and 3x3 stride-2 max-pool (224x224 inputs);
    'cifar': 3x3 stride-1 conv-BN-ReLU, no max-pool (32x32 inputs). Convolutions He-initialised
    (fan_out), BatchNorm at weight 1 and bias 0, as torchvision does.
    """
    if stem == "imagenet":
        layers: list[nn.Module] = [
            conv_bn(in_channels, width, 7, 2),
            nn.ReLU(inplace=False),
            nn.MaxPool2d(3, stride=2, padding=1),
        ]
    else:
        layers = [conv_bn(in_channels, width, 3, 1), nn.ReLU(inplace=False)]
    return residual_network(layers, width, 4, 2, num_outputs)


@models.register("resnet18")
class ResNet18(ModelSpec):
    """ResNet-18 (He et al. 2016): 4 stages of 2 basic blocks, 64-512 channels, ~11.7M params.

    11,689,512 parameters with the ImageNet stem and 1000 classes (as published); the CIFAR
    stem (3x3 stride 1, no max-pool) keeps 32x32 feature maps in the first stage.
    """

    stem: Literal["imagenet", "cifar"] = Field(
        "imagenet", description="imagenet: 7x7 stride-2 conv + max-pool; cifar: 3x3 stride-1 conv"
    )
    width: int = Field(64, gt=0, description="channels of the first stage (doubled per stage)")

    def build(self, input_shape: tuple[int, ...], num_outputs: int) -> nn.Module:
        """The network for inputs with input_shape[0] channels; any spatial size works."""
        in_channels = image_shape(input_shape, self.registered_name)[0]
        return resnet18(in_channels, num_outputs, self.stem, self.width)

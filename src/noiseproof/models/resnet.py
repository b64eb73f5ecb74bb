"""CIFAR-style residual networks ResNet-20 and ResNet-32 (He et al. 2016, section 4.2)."""

from __future__ import annotations

from typing import ClassVar

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


def cifar_resnet(in_channels: int, num_outputs: int, blocks: int, width: int) -> nn.Sequential:
    """ResNet with 6 * blocks + 2 layers: stem, 3 stages of widths w/2w/4w, pool, Linear."""
    layers: list[nn.Module] = [conv_bn(in_channels, width, 3, 1), nn.ReLU(inplace=False)]
    channels = width
    for stage in range(3):
        out = width * 2**stage
        for block in range(blocks):
            stride = 2 if stage > 0 and block == 0 else 1
            layers.append(BasicBlock(channels, out, stride))
            channels = out
    layers += [nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(channels, num_outputs)]
    model = nn.Sequential(*layers)
    for module in model.modules():
        if isinstance(module, nn.Conv2d):
            nn.init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu")
    return model


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

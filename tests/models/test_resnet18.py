"""ResNet-18 (He et al. 2016): published parameter count, shapes of both stems, one training
step and the default chip selection, on every device present."""

from __future__ import annotations

import copy

import pytest
import torch
from torch import nn

from noiseproof.chip import chip_params, forward
from noiseproof.errors import NoiseproofError
from noiseproof.models import build_model

DEVICES = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])


def count(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def test_imagenet_variant_has_the_published_parameter_count():
    model = build_model("resnet18", (3, 224, 224), 1000)
    assert count(model) == 11_689_512  # He et al. 2016 / torchvision resnet18
    convs = [m for m in model.modules() if isinstance(m, nn.Conv2d)]
    assert convs[0].kernel_size == (7, 7) and convs[0].stride == (2, 2)
    assert any(isinstance(m, nn.MaxPool2d) for m in model.modules())
    assert len(convs) == 1 + 16 + 3  # stem, 8 blocks x 2, three 1x1 projections


def test_cifar_stem_is_3x3_stride_1_without_max_pool():
    model = build_model({"name": "resnet18", "stem": "cifar"}, (3, 32, 32), 10)
    first = next(m for m in model.modules() if isinstance(m, nn.Conv2d))
    assert first.kernel_size == (3, 3) and first.stride == (1, 1)
    assert not any(isinstance(m, nn.MaxPool2d) for m in model.modules())
    # the stem differs (3x3x3x64 instead of 7x7x3x64); the 10-way head instead of 1000-way
    expected = 11_689_512 - 7 * 7 * 3 * 64 + 3 * 3 * 3 * 64 - 512 * 990 - 990
    assert count(model) == expected


@pytest.mark.parametrize(
    ("spec", "shape", "features"),
    [
        ({"name": "resnet18"}, (3, 64, 64), {2: (64, 16, 16), 10: (512, 2, 2)}),
        ({"name": "resnet18", "stem": "cifar"}, (3, 32, 32), {0: (64, 32, 32), 9: (512, 4, 4)}),
        ({"name": "resnet18", "stem": "cifar", "width": 8}, (1, 28, 28), {9: (64, 4, 4)}),
    ],
)
def test_output_and_stage_shapes(spec, shape, features):
    model = build_model(spec, shape, 7).eval()
    x = torch.randn(2, *shape, generator=torch.Generator().manual_seed(0))
    seen = {}
    for i, layer in enumerate(model):
        x = layer(x)
        seen[i] = tuple(x.shape[1:])
    assert x.shape == (2, 7)
    for index, expected in features.items():
        assert seen[index] == expected


def test_bad_stem_is_one_line():
    with pytest.raises(NoiseproofError) as info:
        build_model({"name": "resnet18", "stem": "tiny"}, (3, 32, 32), 10)
    assert "stem" in str(info.value) and "\n" not in str(info.value)


@pytest.mark.parametrize("device", DEVICES)
def test_one_training_step_and_default_chip_selection(device):
    torch.manual_seed(0)
    model = build_model({"name": "resnet18", "stem": "cifar", "width": 8}, (3, 16, 16), 4)
    model = model.to(device)
    gen = torch.Generator().manual_seed(1)
    x = torch.randn(6, 3, 16, 16, generator=gen).to(device)
    y = torch.tensor([0, 1, 2, 3, 0, 1], device=device)
    params = chip_params(model)  # default: weights and biases of Conv2d and Linear
    convs = sum(isinstance(m, nn.Conv2d) for m in model.modules())
    assert len(params) == convs + 2  # bias-free convs, the Linear's weight and bias
    assert not any("running" in name or name.split(".")[-2:-1] == ["1"] for name in params)
    before = {k: v.detach().clone() for k, v in model.state_dict().items()}
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    loss = nn.functional.cross_entropy(model(x), y)
    loss.backward()
    optimizer.step()
    changed = [k for k, v in model.state_dict().items() if not torch.equal(v, before[k])]
    assert any(k.endswith("conv1.0.weight") for k in changed)
    noisy = {name: p * 1.1 for name, p in params.items()}
    model.eval()
    with torch.no_grad():
        out = forward(model, noisy, x)
    assert out.shape == (6, 4) and out.device.type == torch.device(device).type
    reference = copy.deepcopy(model)  # the same chip written into the weights themselves
    with torch.no_grad():
        for name, param in reference.named_parameters():
            if name in noisy:
                param.mul_(1.1)
        want = reference(x)
    torch.testing.assert_close(out, want, rtol=1e-5, atol=1e-6)
    assert not torch.allclose(out, model(x).detach(), rtol=1e-3, atol=1e-3)  # the chip counts

"""Built-in models: shapes, gradients, parameter counts, functional calls and bad specs."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from noiseproof.chip import chip_params, forward
from noiseproof.errors import NoiseproofError
from noiseproof.models import build_model, models
from noiseproof.models.mlp import MLP

FEATURE_MODELS = [n for n in models.names() if models.get(n).reads == "features"]
"""The models that read real-valued features (token models have tests of their own)."""

IMAGE_SHAPES = [(1, 28, 28), (3, 32, 32)]


def count(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def conv_bn(fan_in: int, fan_out: int, kernel: int) -> int:
    """Parameters of a bias-free conv followed by BatchNorm (weight and bias)."""
    return fan_in * fan_out * kernel * kernel + 2 * fan_out


def cifar_resnet_params(in_channels: int, blocks: int, outputs: int, width: int = 16) -> int:
    """He et al. 2016 section 4.2 with 1x1 conv + BN projections (option B)."""
    total = conv_bn(in_channels, width, 3)
    channels = width
    for stage in range(3):
        out = width * 2**stage
        for _ in range(blocks):
            total += conv_bn(channels, out, 3) + conv_bn(out, out, 3)
            total += conv_bn(channels, out, 1) if channels != out else 0
            channels = out
    return total + channels * outputs + outputs


@pytest.mark.parametrize("shape", IMAGE_SHAPES)
@pytest.mark.parametrize("name", FEATURE_MODELS)
def test_every_model_builds_and_backpropagates(name, shape):
    torch.manual_seed(0)
    model = build_model(name, shape, 10)
    out = model(torch.randn(2, *shape))
    assert out.shape == (2, 10)
    out.square().sum().backward()
    assert all(p.grad is not None for p in model.parameters())


@pytest.mark.parametrize("name", FEATURE_MODELS)
def test_functional_call_uses_the_params_dict(name):
    torch.manual_seed(0)
    model = build_model(name, (3, 32, 32), 10).eval()
    x = torch.randn(2, 3, 32, 32)
    params = chip_params(model)
    assert any(n.endswith("weight") for n in params)
    zeros = {n: torch.zeros_like(p) for n, p in params.items()}
    with torch.no_grad():
        clean = model(x)
        assert torch.equal(forward(model, params, x), clean)
        assert not torch.allclose(forward(model, zeros, x), clean)


@pytest.mark.parametrize("name", FEATURE_MODELS)
def test_no_in_place_activations_and_a_summary_line(name):
    model = build_model(name, (1, 28, 28), 10)
    assert not any(getattr(m, "inplace", False) for m in model.modules())
    summary = {row["name"]: row["summary"] for row in models.describe()}[name]
    assert summary


def test_mlp_drolet_2_8_1_sigmoid():
    model = build_model({"name": "mlp", "hidden": (8,), "activation": "sigmoid"}, (2,), 1)
    assert count(model) == 2 * 8 + 8 + 8 * 1 + 1
    assert any(isinstance(m, nn.Sigmoid) for m in model.modules())
    assert model(torch.randn(2, 2)).shape == (2, 1)


def test_mlp_xavier_init_of_the_drolet_authors():
    """init="xavier": weights within +-sqrt(6 / (fan_in + fan_out)), biases 0.01, seeded."""
    spec = MLP(hidden=(8,), activation="sigmoid", init="xavier")
    torch.manual_seed(0)
    model = spec.build((2,), 1)
    torch.manual_seed(0)
    again = spec.build((2,), 1)
    for layer, twin in zip(model[1::2], again[1::2], strict=True):
        fan_out, fan_in = layer.weight.shape
        bound = (6 / (fan_in + fan_out)) ** 0.5
        largest = float(layer.weight.detach().abs().max())
        assert bound / 2 < largest <= bound  # spread over the range, not tiny
        assert torch.equal(layer.bias, torch.full_like(layer.bias, 0.01))
        assert torch.equal(layer.weight, twin.weight)
    assert MLP().init == "default"


def test_buechel_cnn_has_1600_flat_features_and_formula_parameter_count():
    model = build_model("cnn", (1, 28, 28), 10)
    first_dense = next(m for m in model.modules() if isinstance(m, nn.Linear))
    assert first_dense.in_features == 64 * 5 * 5
    convs = (1 * 64 * 4 * 4 + 64) + (64 * 64 * 4 * 4 + 64)
    dense = (1600 * 256 + 256) + (256 * 64 + 64) + (64 * 10 + 10)
    assert count(model) == convs + dense == 493_642


def test_buechel_cnn_batch_norm_and_init_options():
    """batch_norm: a BatchNorm2d after each convolution, fresh running statistics (the dry run
    that finds the flat width is in eval mode); init: kaiming weights have std sqrt(2/fan_in)
    and zero biases, xavier biases 0.01; the default build is the one before the options."""
    torch.manual_seed(0)
    plain = build_model("cnn", (1, 28, 28), 10)
    torch.manual_seed(0)
    assert all(
        torch.equal(a, b)
        for a, b in zip(
            plain.state_dict().values(),
            build_model({"name": "cnn", "batch_norm": False, "init": "default"}, (1, 28, 28), 10)
            .state_dict()
            .values(),
            strict=True,
        )
    )
    normed = build_model({"name": "cnn", "batch_norm": True}, (1, 28, 28), 10)
    norms = [m for m in normed.modules() if isinstance(m, nn.BatchNorm2d)]
    assert len(norms) == 2 and normed.training
    for norm in norms:
        assert torch.equal(norm.running_mean, torch.zeros(64))
        assert torch.equal(norm.running_var, torch.ones(64))
        assert int(norm.num_batches_tracked) == 0
    assert normed(torch.randn(3, 1, 28, 28)).shape == (3, 10)
    torch.manual_seed(0)
    kaiming = build_model({"name": "cnn", "init": "kaiming"}, (1, 28, 28), 10)
    dense = next(m for m in kaiming.modules() if isinstance(m, nn.Linear))  # 1600 -> 256
    std = float(dense.weight.detach().std())
    expected = (2 / 1600) ** 0.5
    assert abs(std - expected) < 5 * expected / (2 * dense.weight.numel()) ** 0.5
    assert torch.equal(dense.bias, torch.zeros(256))
    xavier = build_model({"name": "cnn", "init": "xavier"}, (1, 28, 28), 10)
    conv = next(m for m in xavier.modules() if isinstance(m, nn.Conv2d))
    assert torch.equal(conv.bias, torch.full((64,), 0.01))


def test_lenet5_has_400_flat_features_on_28x28():
    model = build_model("lenet5", (1, 28, 28), 10)
    first_dense = next(m for m in model.modules() if isinstance(m, nn.Linear))
    assert first_dense.in_features == 16 * 5 * 5


@pytest.mark.parametrize(
    ("name", "blocks", "low", "high"),
    [("resnet20", 3, 0.26e6, 0.28e6), ("resnet32", 5, 0.45e6, 0.48e6)],
)
def test_resnet_parameter_counts(name, blocks, low, high):
    for channels in (1, 3):
        n = count(build_model(name, (channels, 32, 32), 10))
        assert n == cifar_resnet_params(channels, blocks, 10)
        assert low < n < high


def test_resnet_width_and_smallest_input():
    model = build_model({"name": "resnet20", "width": 8}, (2, 8, 8), 3)
    assert model(torch.randn(2, 2, 8, 8)).shape == (2, 3)
    assert count(model) == cifar_resnet_params(2, 3, 3, width=8)


def test_vgg_skips_pooling_at_1x1_and_batchnorm_switch():
    spec = {"name": "vgg", "channels": (8,) * 6, "convs_per_stage": 2, "batchnorm": False}
    model = build_model(spec, (1, 28, 28), 10)
    assert sum(isinstance(m, nn.MaxPool2d) for m in model.modules()) == 4  # 28-14-7-3-1
    assert not any(isinstance(m, nn.BatchNorm2d) for m in model.modules())
    assert sum(isinstance(m, nn.Conv2d) for m in model.modules()) == 12
    assert model(torch.randn(2, 1, 28, 28)).shape == (2, 10)


def test_build_model_accepts_a_spec_instance():
    model = build_model(MLP(hidden=(4,)), (3,), 2)
    assert count(model) == 3 * 4 + 4 + 4 * 2 + 2


@pytest.mark.parametrize(
    "spec",
    [
        {"name": "mlp", "hidden": (0,)},
        {"name": "mlp", "activation": "gelu"},
        {"name": "no_such_model"},
        {"name": "cnn", "channels": 0},
        {"name": "vgg", "channels": ()},
        {"name": "resnet20", "width": 0},
        {"name": "resnet20", "blocks": 7},
    ],
)
def test_bad_specs_raise_noiseproof_error(spec):
    with pytest.raises(NoiseproofError):
        models.create(spec)


@pytest.mark.parametrize(
    ("name", "shape", "outputs"),
    [("cnn", (784,), 10), ("cnn", (1, 4, 4), 10), ("vgg", (28, 28), 10), ("mlp", (2,), 0)],
)
def test_unusable_shapes_raise_noiseproof_error(name, shape, outputs):
    with pytest.raises(NoiseproofError):
        build_model(name, shape, outputs)

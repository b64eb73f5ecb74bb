"""Chip selection, the functional forward through a params dict, and straight-through estimates."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from noiseproof.chip import ChipSelection, chip_params, detached, forward, straight_through
from noiseproof.errors import NoiseproofError
from noiseproof.noise import create_noise


class Leaky(nn.Module):
    """A custom module with a time constant `tau` (like a spiking neuron's) and a buffer."""

    def __init__(self, width: int) -> None:
        super().__init__()
        self.tau = nn.Parameter(torch.linspace(1.0, 2.0, width))
        self.register_buffer("state", torch.zeros(width))

    def forward(self, x):
        return x / self.tau


class Net(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.conv = nn.Conv2d(1, 4, 3)
        self.bn = nn.BatchNorm2d(4)
        self.conv1d = nn.Conv1d(4, 2, 1, bias=False)
        self.neuron = Leaky(2 * 36)
        self.head = nn.Sequential(nn.ReLU(), nn.Linear(2 * 36, 3))

    def forward(self, x):
        h = self.bn(self.conv(x)).flatten(2)  # [B, 4, 36]
        h = self.conv1d(h).flatten(1)  # [B, 72]
        return self.head(self.neuron(h))


def net() -> Net:
    model = Net()
    with torch.no_grad():  # non-trivial BatchNorm affine parameters and statistics
        model.bn.weight.uniform_(0.5, 1.5)
        model.bn.bias.uniform_(-0.5, 0.5)
        model.bn.running_mean.uniform_(-0.1, 0.1)
        model.bn.running_var.uniform_(0.5, 2.0)
    return model


DEFAULT = ["conv.weight", "conv.bias", "conv1d.weight", "head.1.weight", "head.1.bias"]


def snapshot(model: nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def assert_same_state(model: nn.Module, before: dict[str, torch.Tensor]) -> None:
    after = model.state_dict()
    assert list(after) == list(before)
    for name, tensor in before.items():
        assert torch.equal(after[name], tensor), name


def test_default_selection_is_weights_and_biases_of_linear_and_conv():
    model = net()
    assert ChipSelection().names(model) == DEFAULT
    params = chip_params(model)
    assert list(params) == DEFAULT
    # BatchNorm's affine parameters are digital, its statistics are buffers
    assert not any(name.startswith("bn.") for name in params)
    assert "neuron.tau" not in params


def test_chip_params_are_the_modules_own_parameters():
    model = net()
    own = dict(model.named_parameters())
    for name, param in chip_params(model).items():
        assert param is own[name]


def test_include_glob_picks_any_parameter_of_any_module():
    model = net()
    names = ChipSelection(include=("*.tau",)).names(model)
    assert names == ["conv.weight", "conv.bias", "conv1d.weight", "neuron.tau", *DEFAULT[3:]]
    assert (
        ChipSelection(include=("bn.*",)).names(model)
        == [
            *DEFAULT[:2],
            "bn.weight",
            "bn.bias",
            "bn.running_mean",  # buffers too: statistics go on the chip by name
            "bn.running_var",
            *DEFAULT[2:],
        ]
    )


def test_include_alone_with_no_layers():
    model = net()
    assert ChipSelection(layers=(), include=("neuron.tau",)).names(model) == ["neuron.tau"]


def test_exclude_removes_matches_from_either_rule():
    model = net()
    selection = ChipSelection(include=("*.tau",), exclude=("*.bias", "neuron.*"))
    assert selection.names(model) == ["conv.weight", "conv1d.weight", "head.1.weight"]
    assert ChipSelection(kinds=("weight",)).names(model) == [
        "conv.weight",
        "conv1d.weight",
        "head.1.weight",
    ]


@pytest.mark.parametrize(
    "selection",
    [
        ChipSelection(layers=()),
        ChipSelection(exclude=("*",)),
        ChipSelection(layers=("Linear",), kinds=("gain",)),
    ],
)
def test_empty_selection_is_an_error(selection):
    with pytest.raises(NoiseproofError, match="matches no parameter|named in chip.kinds"):
        chip_params(net(), selection)


def test_model_without_chip_layers_is_an_error():
    with pytest.raises(NoiseproofError, match="BatchNorm1d"):
        chip_params(nn.BatchNorm1d(3))


def test_selection_rejects_unknown_fields():
    with pytest.raises(ValueError, match="layer"):
        ChipSelection(layer=("Linear",))


@pytest.mark.parametrize("mode", ["eval", "train"])
def test_forward_never_modifies_the_module(mode):
    model = net()
    model.train(mode == "train")
    model.bn.eval()  # in train mode BatchNorm updates its statistics by design, params or not
    x = torch.randn(5, 1, 8, 8, generator=torch.Generator().manual_seed(0))
    before = snapshot(model)
    params_before = {n: p for n, p in model.named_parameters()}
    reference = model(x).detach()
    params = chip_params(model)
    clean = forward(model, params, x)
    assert torch.equal(clean, reference)
    noisy_params = create_noise({"name": "relative_gaussian", "zeta": 0.5}).sample(
        detached(params), torch.Generator().manual_seed(1)
    )
    noisy = forward(model, noisy_params, x)
    assert not torch.allclose(noisy, reference)
    noisy.sum().backward()  # a backward through the noisy call touches nothing either
    assert_same_state(model, before)
    assert {n: p for n, p in model.named_parameters()} == params_before
    assert torch.equal(model(x), reference)
    assert model.training == (mode == "train")


def test_forward_with_a_partial_dict_keeps_the_other_parameters():
    model = net().eval()
    x = torch.randn(2, 1, 8, 8)
    zero_head = {"head.1.weight": torch.zeros(3, 72), "head.1.bias": torch.tensor([1.0, 2.0, 3.0])}
    out = forward(model, zero_head, x)
    assert torch.equal(out, torch.tensor([[1.0, 2.0, 3.0]]).expand(2, 3))
    assert not torch.equal(model(x), out)


def test_forward_uses_non_chip_parameters_from_the_module():
    model = net().eval()
    x = torch.randn(2, 1, 8, 8)
    params = chip_params(model)
    with torch.no_grad():
        model.neuron.tau.mul_(2.0)
    assert torch.equal(forward(model, params, x), model(x))


def test_detached_shares_data_without_gradient():
    model = net()
    params = chip_params(model)
    out = detached(params)
    for name, tensor in out.items():
        assert not tensor.requires_grad
        assert tensor.data_ptr() == params[name].data_ptr()


def test_straight_through_forward_values_and_clean_gradients():
    model = net().eval()
    x = torch.randn(6, 1, 8, 8, generator=torch.Generator().manual_seed(2))
    params = chip_params(model)
    noisy = create_noise({"name": "relative_gaussian", "zeta": 0.3}).sample(
        detached(params), torch.Generator().manual_seed(3)
    )
    mixed = straight_through(params, noisy)
    for name in params:
        torch.testing.assert_close(mixed[name], noisy[name], rtol=1e-6, atol=1e-7)
    forward(model, mixed, x).square().sum().backward()
    # reference: the gradient of the same loss taken at the noisy point, w.r.t. the noisy weights
    leaves = {n: t.detach().clone().requires_grad_(True) for n, t in mixed.items()}
    forward(model, leaves, x).square().sum().backward()
    for name, param in params.items():
        torch.testing.assert_close(param.grad, leaves[name].grad, rtol=1e-5, atol=1e-6)
    # and it is not the clean point's gradient
    clean_leaves = {name: p.detach().clone().requires_grad_(True) for name, p in params.items()}
    forward(model, clean_leaves, x).square().sum().backward()
    assert not torch.allclose(params["head.1.weight"].grad, clean_leaves["head.1.weight"].grad)


def test_straight_through_sends_no_gradient_into_the_perturbed_tensors():
    clean = {"w": torch.tensor([1.0, -2.0], requires_grad=True)}
    perturbed = {"w": torch.tensor([1.5, -1.0], requires_grad=True)}
    mixed = straight_through(clean, perturbed)
    assert torch.equal(mixed["w"], torch.tensor([1.5, -1.0]))
    (mixed["w"] * torch.tensor([3.0, 4.0])).sum().backward()
    assert torch.equal(clean["w"].grad, torch.tensor([3.0, 4.0]))
    assert perturbed["w"].grad is None

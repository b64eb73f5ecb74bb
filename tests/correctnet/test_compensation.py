"""Compensation modules: identity at start, digital, frozen originals, cost accounting."""

import pytest
import torch
from torch import nn

from noiseproof.chip import ChipSelection, chip_params, detached, forward
from noiseproof.data.base import Dataset
from noiseproof.errors import NoiseproofError
from noiseproof.methods.correctnet.compensation import (
    Compensated,
    CompensationSpec,
    compensated_selection,
)
from noiseproof.methods.correctnet.cost import layer_macs, overhead
from noiseproof.methods.correctnet.settings import CompensationTraining
from noiseproof.methods.correctnet.training import train_compensation
from noiseproof.models import build_model
from noiseproof.noise import noise_models


def blobs(
    n: int = 256, shape=(1, 8, 8), classes: int = 3, seed: int = 0, val: bool = True
) -> Dataset:
    gen = torch.Generator().manual_seed(seed)
    y = torch.randint(0, classes, (n,), generator=gen)
    centres = torch.randn(classes, *shape, generator=gen)
    x = centres[y] + 0.5 * torch.randn(n, *shape, generator=gen)
    half = n // 2
    x_val, y_val = (x[half:], y[half:]) if val else (x[:0], y[:0])
    return Dataset("blobs", x[:half], y[:half], x_val, y_val, x[half:], y[half:], classes)


def vgg() -> nn.Module:
    torch.manual_seed(0)
    return build_model({"name": "vgg", "channels": [4, 8], "hidden": 16}, (1, 8, 8), 3)


def layer_names(model: nn.Module) -> list[str]:
    return [n for n, m in model.named_modules() if isinstance(m, nn.Linear | nn.Conv2d)]


@pytest.mark.parametrize("activation", ["relu", "none"])
def test_zero_initialised_compensation_leaves_outputs_unchanged(activation):
    model = build_model("lenet5", (1, 28, 28), 10).eval()
    wrapped = Compensated(
        model, layer_names(model), (1, 28, 28), CompensationSpec(activation=activation)
    ).eval()
    x = torch.randn(5, 1, 28, 28, generator=torch.Generator().manual_seed(0))
    assert torch.equal(wrapped(x), model(x))
    noise = noise_models.create({"name": "lognormal", "sigma": 0.5})
    noisy = noise.sample(detached(chip_params(model)), torch.Generator().manual_seed(1))
    noisy_wrapped = {f"base.{k}": v for k, v in noisy.items()}
    assert torch.equal(forward(wrapped, noisy_wrapped, x), forward(model, noisy, x))


def test_user_module_is_not_edited():
    model = vgg()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    wrapped = Compensated(model, layer_names(model), (1, 8, 8)).eval()
    wrapped(torch.randn(2, 1, 8, 8))
    assert all(not m._forward_hooks for m in model.modules())  # hooks live only in a forward
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    assert set(model.state_dict()) == set(before)


def test_compensation_stays_off_the_chip():
    model = vgg()
    wrapped = Compensated(model, layer_names(model), (1, 8, 8))
    on_chip = list(chip_params(wrapped, None))  # the wrapper adapts the selection itself
    assert on_chip == [f"base.{name}" for name in chip_params(model)]
    custom = ChipSelection(kinds=("weight",), exclude=("0.*",))
    on_chip = list(chip_params(wrapped, custom))
    assert on_chip == [f"base.{name}" for name in chip_params(model, custom)]
    assert list(chip_params(wrapped, compensated_selection(custom))) == on_chip  # idempotent


def test_frozen_weights_stay_bit_identical_while_compensation_trains():
    model, data = vgg(), blobs(val=False)  # no validation split: the last step is kept
    flags = {name: p.requires_grad for name, p in model.named_parameters()}
    before = {k: v.clone() for k, v in model.state_dict().items()}  # includes BN statistics
    wrapped = Compensated(model, layer_names(model), (1, 8, 8))
    comp_before = [p.clone() for p in wrapped.compensation_parameters()]
    noise = noise_models.create({"name": "lognormal", "sigma": 0.5})
    modes = [m.training for m in model.modules()]
    fit = train_compensation(
        wrapped,
        data,
        noise,
        CompensationTraining(steps=15, batch_size=32, lr=1e-2),
        seed=0,
    )
    assert fit["steps"] == 15 and len(fit["history"]) == 1
    after = model.state_dict()  # BatchNorm statistics too: the base ran in eval mode throughout
    assert all(torch.equal(before[k], after[k]) for k in before)
    assert {n: p.requires_grad for n, p in model.named_parameters()} == flags
    assert [m.training for m in model.modules()] == modes
    assert any(
        not torch.equal(a, b)
        for a, b in zip(comp_before, wrapped.compensation_parameters(), strict=True)
    )


def test_compensation_learns_to_undo_a_systematic_error():
    # a fixed, strong gain error on every weight: a linear correction can undo most of it
    torch.manual_seed(0)
    model = nn.Sequential(nn.Flatten(), nn.Linear(64, 32), nn.ReLU(), nn.Linear(32, 3))
    data = blobs(512)
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    for _ in range(100):
        loss = nn.functional.cross_entropy(model(data.x_train), data.y_train)
        opt.zero_grad()
        loss.backward()
        opt.step()

    class Scramble(noise_models.get("lognormal")):
        def perturb(self, name, tensor, generator):
            return tensor * (-0.3 if name.endswith("1.weight") else 1.0)

    noise = Scramble(sigma=0.0)
    clean = detached(chip_params(model))

    def accuracy(m, params):
        return float((forward(m, params, data.x_test).argmax(1) == data.y_test).float().mean())

    broken = accuracy(model, noise.sample(clean, torch.Generator()))
    wrapped = Compensated(model, ["1"], (1, 8, 8), CompensationSpec(rank=32, activation="none"))
    fit = train_compensation(
        wrapped,
        data,
        noise,
        CompensationTraining(steps=150, batch_size=64, lr=1e-2),
        seed=0,
    )
    assert fit["steps"] == 150 and fit["best_step"] in (75, 150)  # two checks of 75 steps
    noisy = {f"base.{k}": v for k, v in noise.sample(clean, torch.Generator()).items()}
    fixed = accuracy(wrapped, {**noisy, **dict(wrapped.comp.named_parameters(prefix="comp"))})
    assert broken < 0.7 and fixed > 0.9


def test_overhead_counts_parameters_and_macs():
    model = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 3))
    wrapped = Compensated(model, ["0"], (4,), CompensationSpec(rank=2, affine=False))
    cost = overhead(wrapped, (4,))
    # down 8x2 (no bias) + up 2x8 + 8; base 4*8+8 + 8*3+3
    assert (cost["params"], cost["base_params"]) == (40, 67)
    assert (cost["macs"], cost["base_macs"]) == (32, 56)
    assert cost["params_percent"] == pytest.approx(100 * 40 / 67)
    with_affine = overhead(Compensated(model, ["0"], (4,), CompensationSpec(rank=2)), (4,))
    assert (with_affine["params"], with_affine["macs"]) == (40 + 16, 32 + 8)  # a, b: 8 each
    conv = nn.Sequential(nn.Conv2d(2, 4, 3, padding=1))
    macs = layer_macs(conv, (2, 5, 5))
    assert macs == {"0": 4 * 5 * 5 * 2 * 9}
    wrapped = Compensated(conv, ["0"], (2, 5, 5), CompensationSpec(rank=2, kernel_size=3))
    cost = overhead(wrapped, (2, 5, 5))
    # depthwise 4 ch * 9 per pixel, 1x1 4->2, 1x1 2->4, per-channel gain, each over 25 pixels
    assert cost["macs"] == 25 * (4 * 9 + 4 * 2 + 2 * 4 + 4)


def test_bad_layers_are_one_line_errors():
    model = vgg()
    with pytest.raises(NoiseproofError, match="no layer named 'nope'"):
        Compensated(model, ["nope"], (1, 8, 8))
    with pytest.raises(NoiseproofError, match="only Linear and Conv"):
        Compensated(model, ["1"], (1, 8, 8))  # a BatchNorm


def test_compensation_that_does_not_help_leaves_the_identity_in_place():
    """The untrained compensation, scored on the same validation chips, is the floor: a training
    that does not raise the noisy validation accuracy (here a vanishing learning rate) gives the
    initial compensation back bit for bit."""
    model, data = vgg(), blobs()
    wrapped = Compensated(model, layer_names(model), (1, 8, 8))
    initial = {k: v.clone() for k, v in wrapped.comp.state_dict().items()}
    noise = noise_models.create({"name": "lognormal", "sigma": 0.5})
    fit = train_compensation(
        wrapped,
        data,
        noise,
        CompensationTraining(steps=6, batch_size=16, lr=1e-12, eval_every=2),
        seed=0,
    )
    assert len(fit["history"]) == 3  # checks after steps 2, 4 and 6 (the trainer's epochs)
    assert all("val_noisy_accuracy" in row for row in fit["history"])
    assert fit["best_step"] == 0
    assert fit["best_validation"] == max(row["val_noisy_accuracy"] for row in fit["history"])
    assert all(torch.equal(initial[k], v) for k, v in wrapped.comp.state_dict().items())


def test_the_base_of_a_compensated_model_stays_in_eval_mode():
    model = vgg().train()
    wrapped = Compensated(model, layer_names(model), (1, 8, 8)).train()
    assert wrapped.training and all(m.training for m in wrapped.comp.modules())
    assert not any(m.training for m in model.modules())
    wrapped.eval()
    assert not any(m.training for m in wrapped.modules())

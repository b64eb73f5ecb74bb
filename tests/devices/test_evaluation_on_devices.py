"""Monte Carlo transfers, the targeted attack, the loss landscape, CorrectNet's compensation, chip
calibration and clean accuracy on every device present, the data given on the CPU (moved once
inside)."""

from __future__ import annotations

import pytest
import torch
from present import DEVICES
from torch import nn

import noiseproof as nf
from helpers import tiny_data
from noiseproof.calibration.chips import calibrated_module
from noiseproof.calibration.fit import calibrate_chip, calibrated_forward
from noiseproof.calibration.settings import CalibrationConfig
from noiseproof.chip import chip_params, detached
from noiseproof.devices import model_device
from noiseproof.evaluation.attack import AttackConfig, targeted_attack
from noiseproof.evaluation.clean import clean_accuracy
from noiseproof.evaluation.landscape import LandscapeConfig, loss_landscape
from noiseproof.methods import methods
from noiseproof.seeding import generator
from noiseproof.tasks import tasks

NOISE = {"name": "relative_gaussian", "zeta": 0.3}
CHEAP_CORRECTNET = {
    "name": "correctnet",
    "base": "standard",
    "strategy": "rl",
    "correct": {
        "training": {"steps": 4, "batch_size": 8, "eval_every": 2, "validation_transfers": 2},
        "placement": {"search_steps": 2, "search_transfers": 2, "episodes": 4, "batch": 2},
    },
}
"""CorrectNet with tiny budgets (as in tests/test_contract_zoo.py), RL placement included."""


def model_on(device: str) -> nn.Module:
    torch.manual_seed(0)
    net = nn.Sequential(nn.Flatten(), nn.Linear(64, 16), nn.ReLU(), nn.Linear(16, 3))
    return net.to(device)


@pytest.mark.parametrize("device", DEVICES)
def test_run_transfers_on_the_device(device):
    data = tiny_data()
    model = model_on(device)
    noise = nf.create_noise(NOISE)

    def chips():
        gen = generator(0, "chips", device=device)
        return nf.run_transfers(model, noise, data.x_test, data.y_test, 5, gen)

    first, second = chips(), chips()
    assert first.accuracy.shape == (5,)
    assert ((first.accuracy >= 0) & (first.accuracy <= 1)).all()
    assert torch.equal(first.accuracy.cpu(), second.accuracy.cpu())
    assert 0.0 <= nf.accuracy_summary(first.accuracy)["mean"] <= 1.0
    assert 0.0 <= nf.reliability(first, 0.95)["share"] <= 1.0


@pytest.mark.parametrize("device", DEVICES)
def test_attack_on_the_device(device):
    data = tiny_data()
    config = AttackConfig(zetas=(0.1,), n_steps=2, transfers=2)
    records = targeted_attack(
        model_on(device),
        data.x_test,
        data.y_test,
        config,
        generator=torch.Generator().manual_seed(0),
    )
    again = targeted_attack(
        model_on(device),
        data.x_test,
        data.y_test,
        config,
        generator=torch.Generator().manual_seed(0),
    )
    assert records[0]["attacked_loss"] >= records[0]["clean_loss"] - 1e-6
    assert records[0]["attacked_accuracy"] == again[0]["attacked_accuracy"]


@pytest.mark.parametrize("device", DEVICES)
def test_landscape_on_the_device(device):
    data = tiny_data()
    config = LandscapeConfig(alphas=(-1.0, 1.0), repeats=2, examples=16)
    curves = loss_landscape(
        model_on(device),
        data.x_test,
        data.y_test,
        config,
        generator=torch.Generator().manual_seed(0),
    )
    again = loss_landscape(
        model_on(device),
        data.x_test,
        data.y_test,
        config,
        generator=torch.Generator().manual_seed(0),
    )
    assert curves["loss"] == again["loss"]
    assert len(curves["loss"]) == 2 and curves["alphas"] == [-1.0, 0.0, 1.0]


@pytest.mark.parametrize("device", DEVICES)
def test_correctnet_compensation_on_the_device(device):
    data = tiny_data()
    model = model_on(device)
    wrapped, record = methods.create(CHEAP_CORRECTNET).finish(
        model,
        data.to(device),
        nf.create_noise(NOISE),
        selection=nf.ChipSelection(),
        seed=0,
        log=lambda _: None,
    )
    assert model_device(wrapped).type == device
    assert all(p.device.type == device for p in wrapped.parameters())
    assert record["strategy"] == "rl"


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("precision", ["fp32", "bf16"])
def test_clean_accuracy_in_a_precision(device, precision):
    data = tiny_data()
    model = model_on(device)
    full = clean_accuracy(model, data.x_test, data.y_test)
    low = clean_accuracy(model, data.x_test, data.y_test, precision=precision)
    assert abs(full - low) <= 2 / 16  # bf16 rounding may flip an example or two of 16


@pytest.mark.parametrize("device", DEVICES)
def test_dataset_to_moves_every_split_once(device):
    data = tiny_data()
    moved = data.to(device)
    assert moved.x_train.device.type == device and moved.y_test.device.type == device
    assert moved.to(device) is moved
    assert data.to("cpu") is data


@pytest.mark.parametrize("device", DEVICES)
def test_chip_calibration_on_the_device(device):
    """A chip calibrated where the model lives: the fitted columns, the calibrated module and
    its forward stay on that device and give the fitted forward (calibrated_forward)."""
    model = model_on(device).eval()
    clean = detached(chip_params(model))
    gen = generator(0, device=device)
    chip = {
        n: t * (1 + 0.2 * torch.randn(t.shape, generator=gen, device=device))
        for n, t in clean.items()
    }
    data = tiny_data().to(device)
    x, y = data.x_train[:64], data.y_train[:64]
    settings = CalibrationConfig(params=["gain", "bias"], steps=2)
    task = tasks.create("classification")
    calibration = calibrate_chip(model, clean, chip, x, y, settings, task)
    module = calibrated_module(model, chip, calibration)
    assert {p.device.type for p in module.parameters()} == {device}
    with torch.no_grad():
        torch.testing.assert_close(module(x), calibrated_forward(model, chip, calibration, x))

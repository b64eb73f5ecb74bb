"""Calibration after programming (noiseproof.calibration) against a literal reference
(reference.calibration_reference): the per-column least squares, the sequential fit, a known
gain error recovered, the calibrated module equal to the fitted forward."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from noiseproof.analog import AnalogForward
from noiseproof.analog_ranges import evaluation_forward
from noiseproof.calibration.chips import calibrated_module
from noiseproof.calibration.columns import fit_columns
from noiseproof.calibration.fit import ChipEffects, calibrate_chip, calibrated_forward
from noiseproof.calibration.model import Calibrated
from noiseproof.calibration.settings import CalibrationConfig
from noiseproof.chip import chip_params, forward
from noiseproof.tasks import tasks
from reference.calibration_reference import column_fit, sequential_fit

TASK = tasks.create("classification")


def network(seed: int = 0) -> nn.Sequential:
    """Linear -> BatchNorm -> ReLU -> Linear -> ReLU -> Linear, random statistics, eval mode."""
    torch.manual_seed(seed)
    net = nn.Sequential(
        nn.Linear(6, 16),
        nn.BatchNorm1d(16),
        nn.ReLU(),
        nn.Linear(16, 12),
        nn.ReLU(),
        nn.Linear(12, 3),
    )
    with torch.no_grad():
        net[1].running_mean.normal_()
        net[1].running_var.uniform_(0.5, 2.0)
        net[1].weight.uniform_(0.5, 1.5)
    return net.eval()


def clean_of(net: nn.Module) -> dict[str, torch.Tensor]:
    return {name: t.detach().clone() for name, t in chip_params(net).items()}


def test_column_fit_is_least_squares():
    gen = torch.Generator().manual_seed(1)
    chip = torch.randn(200, 5, generator=gen, dtype=torch.float64)
    clean = 0.7 * chip + torch.randn(200, 5, generator=gen, dtype=torch.float64) + 2.0
    gain, offset = fit_columns(chip, clean, True, True)
    ref_gain, ref_offset = column_fit(chip.numpy(), clean.numpy())
    np.testing.assert_allclose(gain.numpy(), ref_gain, rtol=1e-10)
    np.testing.assert_allclose(offset.numpy(), ref_offset, rtol=1e-10, atol=1e-12)
    only_offset = fit_columns(chip, clean, False, True)
    assert torch.equal(only_offset[0], torch.ones(5, dtype=torch.float64))
    torch.testing.assert_close(only_offset[1], (clean - chip).mean(0))


def test_a_known_gain_error_per_column_is_recovered():
    """The chip's first layer reads every column c scaled by g_c (weights and bias): the
    fitted gain is 1 / g_c and the calibrated chip computes the clean network's outputs."""
    net = network()
    clean = clean_of(net)
    g = torch.linspace(0.6, 1.4, 16)
    chip = {**clean, "0.weight": clean["0.weight"] * g[:, None], "0.bias": clean["0.bias"] * g}
    x, y = torch.randn(256, 6, generator=torch.Generator().manual_seed(2)), torch.zeros(256).long()
    calibration = calibrate_chip(net, clean, chip, x, y, CalibrationConfig(), TASK)
    torch.testing.assert_close(calibration.columns["0"][0], 1 / g, rtol=1e-5, atol=0)
    torch.testing.assert_close(calibration.columns["0"][1], torch.zeros(16), rtol=0, atol=1e-5)
    for layer in ("3", "5"):  # later layers already see clean inputs: identity
        torch.testing.assert_close(
            calibration.columns[layer][0],
            torch.ones_like(calibration.columns[layer][0]),
            rtol=0,
            atol=1e-5,
        )
    torch.testing.assert_close(
        calibrated_forward(net, chip, calibration, x), forward(net, clean, x), rtol=0, atol=1e-5
    )


def test_the_sequential_fit_matches_the_reference():
    net = network(3)
    clean = clean_of(net)
    gen = torch.Generator().manual_seed(4)
    chip = {n: t * (1 + 0.3 * torch.randn(t.shape, generator=gen)) for n, t in clean.items()}
    x, y = torch.randn(300, 6, generator=gen), torch.zeros(300).long()
    calibration = calibrate_chip(net, clean, chip, x, y, CalibrationConfig(), TASK)
    reference = sequential_fit(net, clean, chip, x)
    for layer, (gain, offset) in reference.items():
        np.testing.assert_allclose(
            calibration.columns[layer][0].numpy(), gain, rtol=2e-4, atol=2e-5
        )
        np.testing.assert_allclose(
            calibration.columns[layer][1].numpy(), offset, rtol=2e-4, atol=2e-5
        )


class Twice(nn.Module):
    """One Linear called twice per forward (as a time-stepped network calls its layers)."""

    def __init__(self) -> None:
        super().__init__()
        self.a, self.b = nn.Linear(4, 4), nn.Linear(4, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.b(torch.relu(self.a(torch.relu(self.a(x)))))


def test_a_layer_called_twice_is_fitted_on_both_calls():
    """The per-module passes: layer a fitted on its two calls' outputs pooled (the reference:
    least squares over both calls), then b on the corrected chip."""
    torch.manual_seed(5)
    net = Twice().eval()
    clean = clean_of(net)
    chip = {n: t * 1.3 for n, t in clean.items()}
    x, y = torch.randn(64, 4), torch.zeros(64).long()
    calibration = calibrate_chip(net, clean, chip, x, y, CalibrationConfig(), TASK)
    with torch.no_grad():
        t1 = torch.nn.functional.linear(x, clean["a.weight"], clean["a.bias"])
        t2 = torch.nn.functional.linear(t1.relu(), clean["a.weight"], clean["a.bias"])
        y1 = torch.nn.functional.linear(x, chip["a.weight"], chip["a.bias"])
        y2 = torch.nn.functional.linear(y1.relu(), chip["a.weight"], chip["a.bias"])
    gain, offset = column_fit(
        torch.cat([y1, y2]).double().numpy(), torch.cat([t1, t2]).double().numpy()
    )
    np.testing.assert_allclose(calibration.columns["a"][0].numpy(), gain, rtol=1e-4)
    np.testing.assert_allclose(calibration.columns["a"][1].numpy(), offset, rtol=1e-4, atol=1e-5)


def test_norm_statistics_are_those_of_the_chip():
    """`norm` alone (AdaBN): the BatchNorm's running mean and variance become the mean and the
    unbiased variance of its inputs on the chip."""
    net = network(6)
    clean = clean_of(net)
    chip = {**clean, "0.weight": clean["0.weight"] * 2.0}
    x, y = torch.randn(128, 6, generator=torch.Generator().manual_seed(7)), torch.zeros(128).long()
    settings = CalibrationConfig(params=["norm"])
    calibration = calibrate_chip(net, clean, chip, x, y, settings, TASK)
    inputs = torch.nn.functional.linear(x, chip["0.weight"], chip["0.bias"])
    torch.testing.assert_close(calibration.state["1.running_mean"], inputs.mean(0))
    torch.testing.assert_close(calibration.state["1.running_var"], inputs.var(0))
    assert calibration.columns == {}
    torch.testing.assert_close(net[1].running_var, net[1].running_var.clone())  # model untouched


@pytest.mark.parametrize(
    "params", [["gain", "bias"], ["affine"], ["gain", "bias", "norm", "affine"]]
)
def test_the_calibrated_module_computes_the_calibrated_forward(params):
    """What a calibrated checkpoint holds (chip weights, re-fitted tensors, the columns)
    gives the outputs of the fitted forward; `steps` moves only digital tensors."""
    net = network(8)
    clean = clean_of(net)
    gen = torch.Generator().manual_seed(9)
    chip = {n: t * (1 + 0.2 * torch.randn(t.shape, generator=gen)) for n, t in clean.items()}
    x, y = torch.randn(64, 6, generator=gen), torch.randint(0, 3, (64,), generator=gen)
    settings = CalibrationConfig(params=params, steps=3)
    calibration = calibrate_chip(net, clean, chip, x, y, settings, TASK)
    module = calibrated_module(net, chip, calibration)
    with torch.no_grad():
        torch.testing.assert_close(module(x), calibrated_forward(net, chip, calibration, x))
    programmed = module.base if hasattr(module, "base") else module
    for name, tensor in chip.items():
        assert torch.equal(programmed.get_parameter(name), tensor)


def test_settings_refuse_unknown_params_and_bad_counts():
    with pytest.raises(ValueError, match="unknown parameter 'scale'"):
        CalibrationConfig(params=["gain", "scale"])
    with pytest.raises(ValueError, match="examples"):
        CalibrationConfig(examples=0)


def test_under_forward_effects_the_input_ranges_are_the_chips():
    """`input_range` re-calibrates the calibrated DAC ranges on the chip's own activations:
    layer 2's range is the percentile of |relu(x W0' + b0')| with the chip's first layer
    (numpy's linear-interpolation percentile), layer 0's that of |x|; the fit then runs
    through the DAC and ADC, and with no output noise the gain error is still recovered."""
    net = nn.Sequential(nn.Linear(6, 16), nn.ReLU(), nn.Linear(16, 3)).eval()
    clean = clean_of(net)
    g = torch.linspace(0.6, 1.4, 16)
    chip = {**clean, "0.weight": clean["0.weight"] * g[:, None], "0.bias": clean["0.bias"] * g}
    x, y = torch.randn(256, 6, generator=torch.Generator().manual_seed(10)), torch.zeros(256).long()
    effects = AnalogForward(dac_bits=12, adc_bits=12, input_range={"mode": "calibrated"})
    effects = evaluation_forward(effects, net, list(clean), x)  # ranges of the digital network
    analog = ChipEffects(effects, torch.Generator().manual_seed(0))
    settings = CalibrationConfig(params=["gain", "bias", "input_range"])
    calibration = calibrate_chip(net, clean, chip, x, y, settings, TASK, analog)
    p = effects.input_range.percentile
    hidden = torch.relu(x @ chip["0.weight"].T + chip["0.bias"]).abs().flatten().numpy()
    ranges = calibration.forward.ranges.inputs
    assert ranges["2"] == pytest.approx(np.percentile(hidden, p), rel=1e-5)
    assert ranges["0"] == pytest.approx(np.percentile(x.abs().flatten().numpy(), p), rel=1e-5)
    assert effects.ranges.inputs["2"] != pytest.approx(ranges["2"], rel=1e-3)  # the chip's own
    torch.testing.assert_close(calibration.columns["0"][0], 1 / g, rtol=2e-2, atol=0)
    with pytest.raises(ValueError, match="input_range re-calibrates"):
        calibrate_chip(net, clean, chip, x, y, settings, TASK)


def test_column_corrections_live_on_the_device_of_their_layer():
    """A model on another device (here 'meta', as a CUDA model would be) gets its gains and
    offsets there too, so the corrected forward never mixes devices."""
    model = network().to("meta")
    calibrated = Calibrated(model, ["0", "5"])
    assert {p.device.type for p in calibrated.parameters()} == {"meta"}
    assert calibrated(torch.zeros(2, 6, device="meta")).device.type == "meta"

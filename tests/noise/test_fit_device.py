"""fit-device recovers a known device from synthetic measurements, and the `measured` noise
model it feeds draws the per-weight statistics the fit describes.

Recovery tolerances are 4 standard errors of each estimate (two-sided 6e-5 per check), the
standard errors being the fit's own (covariance of the weighted least squares, sigma /
sqrt(2 (n - 1)) per bin, binomial sqrt(p (1 - p) / N) for stuck fractions, std / sqrt(n) for
means), checked against the sample sizes in the comments. Seeds are fixed.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from helpers import tiny_data
from noiseproof.chip import chip_params, detached
from noiseproof.devicefit.devicefile import device_yaml
from noiseproof.devicefit.fit import FitSettings, fit_device
from noiseproof.devicefit.measurements import read_measurements
from noiseproof.errors import NoiseproofError
from noiseproof.evaluation.chipstream import ChipStream, base_seed
from noiseproof.evaluation.transfers import run_transfers
from noiseproof.noise import create_noise
from noiseproof.noise.measured import MeasuredDevice, load_device
from reference.measured_reference import (
    DEVICE_FIXTURE,
    TRUE,
    drift_factor_moments,
    pair_statistics,
    polynomial,
    stuck_kinds,
    synthetic_measurements,
    write_csv,
)

CELLS = 20000  # about 2000 per bin of 10, 200 stuck low, 100 stuck high
K = 4.0  # standard errors allowed


@pytest.fixture(scope="module")
def fitted(tmp_path_factory):
    path = write_csv(tmp_path_factory.mktemp("fit") / "m.csv", synthetic_measurements(CELLS, 0))
    return fit_device(read_measurements(path))


def test_offset_is_recovered(fitted):
    offset = fitted.device.offset  # se about 0.03 uS and 4e-4
    for value, true, se in zip(offset.coefficients, TRUE["offset"], offset.std_errors, strict=True):
        assert abs(value - true) < K * se


def test_sigma_bins_and_polynomial_are_recovered(fitted):
    sigma = fitted.device.sigma
    for b in sigma.bins:  # se about 1.6 % of sigma (2000 cells a bin)
        assert abs(b.sigma_us - polynomial(TRUE["sigma"], b.g_mean_us)) < K * b.sigma_se_us
    for value, true, se in zip(sigma.coefficients, TRUE["sigma"], sigma.std_errors, strict=True):
        assert abs(value - true) < K * se
    cov = np.array(sigma.covariance)
    for g in np.linspace(*TRUE["window"], 5):  # the curve, with its propagated se
        powers = g ** np.arange(3)
        se = math.sqrt(powers @ cov @ powers)
        assert abs(polynomial(sigma.coefficients, g) - polynomial(TRUE["sigma"], g)) < K * se


def test_stuck_cells_are_separated_and_counted(fitted):
    kind = stuck_kinds(CELLS, 0)
    found = np.where(fitted.working, 0, np.where(fitted.stuck_low, 1, 2))
    # every stuck cell sits > 5.7 sigma from its target; a working cell passes 5 sigma with
    # probability 6e-7 (0.01 expected here)
    assert int((found != kind).sum()) <= 2
    device = fitted.device
    for cluster, name in ((device.stuck_low, "stuck_low"), (device.stuck_high, "stuck_high")):
        p, mean, std = TRUE[name]
        assert abs(cluster.fraction - p) < K * math.sqrt(p * (1 - p) / CELLS)
        assert abs(cluster.g_mean_us - mean) < K * std / math.sqrt(cluster.cells)


def test_drift_is_recovered(fitted):
    drift = fitted.device.drift  # 19,700 cells: se 7e-5 on the mean, 5e-5 on the std
    assert drift.t0_s == TRUE["times"][0]
    assert abs(drift.nu_mean - TRUE["nu"][0]) < K * drift.nu_mean_se
    assert abs(drift.nu_std - TRUE["nu"][1]) < K * drift.nu_std_se
    assert drift.cells == int((stuck_kinds(CELLS, 0) == 0).sum())


def test_the_device_file_loads_back_to_the_same_numbers(fitted, tmp_path):
    text = device_yaml(fitted.device)
    assert "# programming noise sigma(G)" in text and "(uS)" in text and "+- " in text
    path = tmp_path / "device.yaml"
    path.write_text(text)
    assert load_device(path) == fitted.device


def test_the_contract_fixture_is_what_the_fit_gives(tmp_path):
    path = write_csv(tmp_path / "m.csv", synthetic_measurements(3000, 1))
    fresh = fit_device(read_measurements(path), FitSettings(bins=5)).device
    assert _close(load_device(DEVICE_FIXTURE), fresh)


def _close(a: MeasuredDevice, b: MeasuredDevice) -> bool:
    """Nested numbers equal to 1e-9 relative (pytest.approx does not recurse into dicts)."""

    def flat(value):
        if isinstance(value, dict):
            return [x for k in sorted(value) for x in flat(value[k])]
        if isinstance(value, list | tuple):
            return [x for v in value for x in flat(v)]
        return [value]

    left, right = flat(a.model_dump(exclude={"source"})), flat(b.model_dump(exclude={"source"}))
    return left == pytest.approx(right, rel=1e-9)


def _noise(device: MeasuredDevice, **fields):
    """A measured noise model on `device` (given inline: no file is read)."""
    spec = {"name": "measured", "file": str(DEVICE_FIXTURE), "device": device.model_dump()}
    return create_noise({**spec, **fields})


def _without_stuck(device: MeasuredDevice) -> MeasuredDevice:
    none = {"cells": 0, "fraction": 0.0, "fraction_se": 0.0, "g_mean_us": None, "g_std_us": None}
    return MeasuredDevice(**{**device.model_dump(), "stuck_low": none, "stuck_high": none})


ROW = [-1.0, -0.5, 0.0, 0.3, 1.0]  # max|W| = 1
CHIPS = 4000


def _draws(noise, seed: int = 0) -> torch.Tensor:
    """CHIPS draws of each weight of ROW: one tensor of CHIPS identical rows (its max|W| is
    ROW's, so each row is one independent programming of ROW)."""
    weights = torch.tensor(ROW).repeat(CHIPS, 1)
    return noise.sample({"w": weights}, torch.Generator().manual_seed(seed))["w"].double()


def test_per_weight_mean_and_std_match_the_fitted_device():
    device = _without_stuck(load_device(DEVICE_FIXTURE))
    drawn = _draws(_noise(device))
    for j, w in enumerate(ROW):
        mean, std = pair_statistics(
            w, 1.0, device.window_us, device.offset.coefficients, device.sigma.coefficients
        )
        # mean: se std / sqrt(4000); std: relative se 1 / sqrt(2 x 4000) = 1.1 %
        assert abs(float(drawn[:, j].mean()) - mean) < K * std / math.sqrt(CHIPS)
        assert abs(float(drawn[:, j].std()) / std - 1) < K / math.sqrt(2 * CHIPS)


def test_drift_scales_each_device_by_a_lognormal_factor():
    device = _without_stuck(load_device(DEVICE_FIXTURE))
    zero = {"coefficients": [0.0], "std_errors": [0.0], "covariance": [[0.0]]}
    sigma = {**device.sigma.model_dump(), **zero}
    device = MeasuredDevice(**{**device.model_dump(), "offset": zero, "sigma": sigma})
    t = 100 * device.drift.t0_s
    drawn = _draws(_noise(device, t_inference=t))
    f_mean, f_std = drift_factor_moments(device.drift.nu_mean, device.drift.nu_std, 100.0)
    g_min, g_max = device.window_us
    for j, w in enumerate(ROW):
        g_pos = g_min + (g_max - g_min) * max(w, 0.0)
        g_neg = g_min + (g_max - g_min) * max(-w, 0.0)
        mean = (g_pos - g_neg) * f_mean / (g_max - g_min)
        std = math.hypot(g_pos, g_neg) * f_std / (g_max - g_min)
        assert abs(float(drawn[:, j].mean()) - mean) < K * std / math.sqrt(CHIPS)
        assert abs(float(drawn[:, j].std()) / std - 1) < K / math.sqrt(2 * CHIPS)


def test_stuck_devices_are_reported_as_faults():
    device = load_device(DEVICE_FIXTURE).model_dump()
    device["stuck_low"].update(fraction=0.05, g_mean_us=1.0, g_std_us=0.1)
    device["stuck_high"].update(fraction=0.05, g_mean_us=250.0, g_std_us=5.0)
    noise = _noise(MeasuredDevice(**device))
    weights = torch.tensor(ROW).repeat(CHIPS, 1)
    drawn, masks = noise.sample_with_faults({"w": weights}, torch.Generator().manual_seed(1))
    share = float(masks["w"].double().mean())
    p = 1 - (1 - 0.1) ** 2  # a weight is faulty when either device of its pair is stuck
    assert abs(share - p) < K * math.sqrt(p * (1 - p) / masks["w"].numel())
    healthy = _noise(_without_stuck(MeasuredDevice(**device)))
    same = healthy.sample({"w": weights}, torch.Generator().manual_seed(1))["w"]
    assert torch.equal(drawn["w"][~masks["w"]], same[~masks["w"]])  # same draws elsewhere


def test_level_zero_is_the_ideal_chip_and_the_window_is_the_measured_one():
    noise = create_noise({"name": "measured", "file": str(DEVICE_FIXTURE)})
    assert noise.conductance_window() == load_device(DEVICE_FIXTURE).window_us
    random = torch.randn(6, 4, generator=torch.Generator().manual_seed(0))
    weights = {"w": random, "s": torch.tensor(2.0)}
    ideal = noise.with_level(0).sample(weights, torch.Generator().manual_seed(0))
    for name, tensor in weights.items():
        assert torch.equal(ideal[name], tensor)


def test_the_spec_holds_the_fitted_numbers_and_outlives_the_file(tmp_path, monkeypatch):
    (tmp_path / "device.yaml").write_bytes(DEVICE_FIXTURE.read_bytes())
    monkeypatch.chdir(tmp_path)
    noise = create_noise({"name": "measured", "file": "device.yaml", "scale": 0.5})
    spec = noise.spec()
    assert spec["file"] == str(tmp_path / "device.yaml")  # relative: against the cwd
    assert spec["device"]["sigma"]["coefficients"] == list(noise.device.sigma.coefficients)
    (tmp_path / "device.yaml").unlink()
    assert create_noise(spec) == noise


@pytest.mark.parametrize(
    ("extra", "content", "needle"),
    [
        ({}, None, "device file not found"),
        ({}, "a: [1, 2", "is not valid YAML"),
        ({}, "- 1\n", "must hold a mapping"),
        ({}, "format: 1\nsource: x\n", "window_us"),
        ({"t_inference": 0.5}, "FIXTURE", "must be >= the device's t0"),
        ({"t_inference": -1.0}, "FIXTURE", "t_inference"),
        ({"scale": -1.0}, "FIXTURE", "scale"),
    ],
)
def test_a_bad_device_file_or_field_is_one_line_naming_it(tmp_path, extra, content, needle):
    path = tmp_path / "device.yaml"
    if content is not None:
        path.write_text(DEVICE_FIXTURE.read_text() if content == "FIXTURE" else content)
    with pytest.raises(NoiseproofError) as caught:
        create_noise({"name": "measured", "file": str(path), **extra})
    message = str(caught.value)
    assert needle in message and "\n" not in message
    if "t_inference" not in extra and "scale" not in extra:
        assert str(tmp_path) in message


def test_t_inference_needs_a_device_with_drift(tmp_path):
    path = write_csv(tmp_path / "m.csv", synthetic_measurements(3000, 2, reads=False))
    device = fit_device(read_measurements(path), FitSettings(bins=5)).device
    assert device.drift is None
    with pytest.raises(NoiseproofError, match="t_inference needs drift"):
        _noise(device, t_inference=10.0)


def test_python_api_refuses_bad_arguments():
    with pytest.raises(TypeError, match="Measurements"):
        fit_device("m.csv")
    with pytest.raises(ValueError, match="bins"):
        FitSettings(bins=2, degree=2)
    with pytest.raises(ValueError, match="degree"):
        FitSettings(degree=3)


def test_a_chip_of_the_measured_device_evaluates_a_model():
    data = tiny_data()
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(64, 3))
    noise = create_noise({"name": "measured", "file": str(DEVICE_FIXTURE)})
    result = run_transfers(
        model, noise, data.x_test, data.y_test, 3, torch.Generator().manual_seed(0)
    )
    # reference: chip k's weights drawn from the run's chip stream, forwarded by hand
    clean = detached(chip_params(model))
    seed = base_seed(torch.Generator().manual_seed(0))
    stream = ChipStream(noise, clean, seed, torch.device("cpu"))
    for k in range(3):
        logits = torch.func.functional_call(model, stream.chip(k), (data.x_test,))
        right = (logits.argmax(dim=1) == data.y_test).double().mean()
        assert float(result.accuracy[k]) == pytest.approx(float(right), abs=1e-12), k
        assert any(not torch.equal(stream.chip(k)[n], clean[n]) for n in clean)  # a real draw

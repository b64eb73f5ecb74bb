"""The pcm noise model against its formulas (tests/reference/pcm_reference.py), its options and
validation, the optional aihwkit cross-check, and a tiny compare run with two pcm entries.

Statistical checks use fixed seeds. Tolerances are 5 standard errors of the difference of two
independent estimates: for a mean, sqrt(var_a / n_a + var_b / n_b); for a variance, the
standard error of a sample variance, sqrt((m4 - var^2) / n), from each sample's own fourth
central moment m4.
"""

from __future__ import annotations

import json
import math

import matplotlib.pyplot as plt
import numpy as np
import pytest
import torch
import yaml
from click.testing import CliRunner

from noiseproof.cli import cli
from noiseproof.errors import NoiseproofError
from noiseproof.experiments.plots import is_time_sweep, level_axis, zero_position
from noiseproof.noise import noise_models
from noiseproof.noise.pcm import PCM
from reference import pcm_reference as ref

TIMES = (0.0, 1.0, 3600.0, 2592000.0, 31536000.0)
YEAR = 31536000.0
WEIGHTS = np.linspace(-1.0, 1.0, 9)


def gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def draws(seed: int, n: int) -> np.ndarray:
    """The [3, 2, n] block of N(0,1) the model draws first from generator `seed`."""
    return torch.randn((3, 2, n), generator=gen(seed), dtype=torch.float64).numpy()


def agree(a: np.ndarray, b: np.ndarray) -> None:
    """Per column: means within 5 standard errors, variances within 5 standard errors."""
    for x, y in zip(a.T, b.T, strict=True):
        n_x, n_y = len(x), len(y)
        se_mean = math.sqrt(x.var() / n_x + y.var() / n_y)
        assert abs(x.mean() - y.mean()) <= 5 * se_mean + 1e-12, (x.mean(), y.mean())
        m4_x, m4_y = ((x - x.mean()) ** 4).mean(), ((y - y.mean()) ** 4).mean()
        se_var = math.sqrt((m4_x - x.var() ** 2) / n_x + (m4_y - y.var() ** 2) / n_y)
        assert abs(x.var() - y.var()) <= 5 * se_var + 1e-12, (x.var(), y.var())


def ours(t_inference: float, rows: int, seed: int, **options) -> np.ndarray:
    """[rows, 9] samples of w' - w for WEIGHTS: one array of `rows` copies (max|W| = 1)."""
    w = torch.tensor(np.tile(WEIGHTS, (rows, 1)))
    out = PCM(t_inference=t_inference, **options).sample({"w": w}, gen(seed))["w"]
    return (out - w).numpy()


def test_registered_with_published_defaults():
    model = noise_models.create("pcm")
    assert model.level_field == "t_inference" and model.level == 0.0
    assert (model.g_max, model.t0, model.t_read) == (25.0, 20.0, 250e-9)
    assert model.prog_coeff == (0.26348, 1.9650, -1.1731)
    assert model.prog_coeff_g_max_reference == 25.0
    assert model.drift_compensation == "none" and model.bias == "digital"
    assert PCM(drift_compensation=True).drift_compensation == "global"  # earlier configs' flag
    assert PCM(drift_compensation=False).drift_compensation == "none"
    assert model.conductance_window() == (0.0, 25.0)
    assert PCM(g_max=40.0).conductance_window() == (0.0, 40.0)
    assert noise_models.create(model.spec()) == model
    assert model.with_level(3600.0).t_inference == 3600.0


@pytest.mark.parametrize("t_inference", TIMES)
@pytest.mark.parametrize("compensation", ["none", "global", "per_column"])
def test_one_chip_equals_the_formulas_with_the_same_draws(t_inference, compensation):
    w = torch.randn(6, 5, generator=gen(3))
    model = PCM(t_inference=t_inference, drift_compensation=compensation)
    out = model.sample({"layer.weight": w}, gen(7))["layer.weight"]
    flat = w.double().numpy().ravel()
    expected = ref.chip(flat, draws(7, w.numel()), t_inference, compensation, rows=6)
    assert out.dtype == w.dtype
    np.testing.assert_allclose(out.numpy().ravel(), expected, rtol=1e-5, atol=1e-7)


def test_formulas_at_reference_points():
    model = PCM()
    g = torch.tensor([0.0, 2.5, 12.5, 25.0], dtype=torch.float64)
    np.testing.assert_allclose(model.programming_sigma(g), ref.programming_sigma(g.numpy()))
    assert model.programming_sigma(g)[0] == pytest.approx(0.26348)  # c0 at G = 0
    assert model.programming_sigma(g)[-1] == pytest.approx(0.26348 + 1.9650 - 1.1731)
    assert PCM(g_max=50.0).programming_sigma(2 * g)[-1] == pytest.approx(2 * 1.05538)
    np.testing.assert_allclose(model.read_noise_q(g), ref.read_q(g.numpy()))
    assert model.read_noise_q(g)[-1] == pytest.approx(0.0088) and model.read_noise_q(g)[0] == 0.2
    for t in TIMES:
        assert PCM(t_inference=t).read_noise_growth() == pytest.approx(ref.growth(t))


def test_drift_exponent_moments_are_clipped():
    model = PCM()
    g = torch.tensor([0.0, 1e-9, 0.025, 2.5, 25.0], dtype=torch.float64)  # G/g_max: 0 ... 1
    mu, s = model.drift_moments(g)
    mu_ref, s_ref = ref.drift_mean_std(g.numpy())
    np.testing.assert_allclose(mu, mu_ref)
    np.testing.assert_allclose(s, s_ref)
    assert mu[0] == mu[1] == 0.1 and s[0] == s[1] == 0.045  # G/g_max floored at 1e-7, clipped
    assert mu[-1] == 0.049 and s[-1] == 0.008  # at g_max: 0.0244 -> 0.049, -0.0059 -> 0.008
    assert mu[2] == 0.1 and s[2] == 0.045  # G/g_max = 1e-3: 0.131 -> 0.1, 0.080 -> 0.045
    assert mu[3] == pytest.approx(0.0601, abs=1e-4)  # G/g_max = 0.1: inside both clips
    assert s[3] == pytest.approx(0.0229, abs=1e-4)
    nu = model.drift_exponent(g.expand(100_000, -1), torch.randn(100_000, 5, generator=gen()))
    assert bool((nu >= 0).all())
    mu_lo, s_lo = 0.049, 0.008  # at g_max nu = |mu + s z| with mu >> s: E nu = mu
    assert nu[:, -1].mean() == pytest.approx(mu_lo, abs=5 * s_lo / math.sqrt(100_000))
    assert PCM(drift_scale=2.0).drift_exponent(g, torch.zeros(5)).tolist() == (2 * mu).tolist()


def test_read_noise_grows_with_sqrt_log_time():
    """Programming noise and drift off: (G_t - G_P) / G_P = Q(G_P) * growth(t) * z."""
    n, g = 200_000, torch.full((200_000,), 12.5, dtype=torch.float64)
    z = torch.randn(3, n, generator=gen(1), dtype=torch.float64)
    q = ref.read_q(np.array([12.5]))[0]
    for t in TIMES:
        model = PCM(t_inference=t, prog_noise_scale=0.0, drift_scale=0.0)
        programmed, now = model.devices(g, z)
        relative = ((now - programmed) / programmed).numpy()
        sigma = q * ref.growth(t)
        assert relative.std() == pytest.approx(sigma, abs=5 * sigma / math.sqrt(2 * n))
    # ln((1 year + t0) / (2 t_read)) = 31.77 and ln(t0 / (2 t_read)) = 17.50
    assert ref.growth(YEAR) / ref.growth(0.0) == pytest.approx(math.sqrt(31.77 / 17.50), abs=1e-3)


@pytest.mark.parametrize("t_inference", TIMES)
def test_per_weight_perturbation_statistics_match_the_reference(t_inference):
    rows = 20_000
    mine = ours(t_inference, rows, seed=11)
    theirs = (
        ref.chip(
            np.tile(WEIGHTS, rows),
            np.random.default_rng(12).standard_normal((3, 2, rows * WEIGHTS.size)),
            t_inference,
        ).reshape(rows, -1)
        - WEIGHTS
    )
    agree(mine, theirs)


def test_drift_shrinks_weights_and_compensation_restores_the_output_scale():
    w = torch.randn(64, 32, generator=gen(4))
    x = torch.randn(256, 32, generator=gen(5))
    clean = (x @ w.T).norm()
    ratios = {}
    for compensation in (False, True):
        model = PCM(t_inference=YEAR, drift_compensation=compensation)
        chips = [model.sample({"w": w}, gen(seed))["w"] for seed in range(20)]
        ratios[compensation] = [float((x @ c.T).norm() / clean) for c in chips]
    assert max(ratios[False]) < 0.7  # E nu >= 0.049: factor (1.6e6)^-nu <= 0.5 in a year
    assert np.mean(ratios[True]) == pytest.approx(1.0, abs=0.05)  # 1.018: noise adds to |W|


def test_per_column_compensation_restores_every_output_and_takes_a_bias_on_the_chip():
    """Each output's readout is restored: sum_i |W_t[j, i]| after compensation equals
    sum_i |W_P[j, i]| of the chip as programmed (t = 0, no read noise, no drift), output by
    output, with a bias on the chip counted in its output's row."""
    w, b = torch.randn(8, 5, generator=gen(11)), torch.randn(8, generator=gen(12))
    params = {"layer.weight": w, "layer.bias": b}
    quiet = {"read_noise_scale": 0.0, "bias": "chip"}
    programmed = PCM(drift_scale=0.0, **quiet).sample(params, gen(13))
    late = PCM(t_inference=YEAR, drift_compensation="per_column", **quiet).sample(params, gen(13))
    rows = lambda p: p["layer.weight"].abs().sum(1) + p["layer.bias"].abs()  # noqa: E731
    torch.testing.assert_close(rows(late), rows(programmed), rtol=1e-5, atol=1e-6)
    drifted = PCM(t_inference=YEAR, drift_compensation="global", **quiet).sample(params, gen(13))
    assert not torch.allclose(rows(drifted), rows(programmed), rtol=1e-3)  # global: one scale


def test_per_column_readout_matches_aihwkit_per_column_drift_compensation():
    """aihwkit 1.1.0's PerColumnDriftCompensation reads each output's mean |y| over one-hot
    inputs: our per-output scale is its readout(programmed) / readout(at t)."""
    from aihwkit.inference.compensation.drift import PerColumnDriftCompensation

    w = torch.randn(7, 9, generator=gen(14))
    quiet = {"read_noise_scale": 0.0}
    programmed = PCM(drift_scale=0.0, **quiet).sample({"w": w}, gen(15))["w"]
    drifted = PCM(t_inference=YEAR, **quiet).sample({"w": w}, gen(15))["w"]
    ours = PCM(t_inference=YEAR, drift_compensation="per_column", **quiet).sample({"w": w}, gen(15))
    theirs = PerColumnDriftCompensation()
    probe = theirs.get_readout_tensor(9).double()
    alpha = theirs.readout(probe @ programmed.double().T) / theirs.readout(
        probe @ drifted.double().T
    )
    torch.testing.assert_close(
        ours["w"].double(), drifted.double() * alpha[:, None], rtol=1e-5, atol=1e-7
    )


def test_one_generator_state_is_one_chip_at_every_time():
    w = {"a.weight": torch.randn(5, 4, generator=gen(2)), "b.weight": torch.randn(3, 5)}
    states = []
    for t in TIMES:
        for compensation in (False, True):
            g = gen(9)
            PCM(t_inference=t, drift_compensation=compensation).sample(w, g)
            states.append(g.get_state())
    assert all(torch.equal(s, states[0]) for s in states)
    frozen = {"read_noise_scale": 0.0, "drift_scale": 0.0}
    early = PCM(t_inference=1.0, **frozen).sample(w, gen(9))
    late = PCM(t_inference=YEAR, **frozen).sample(w, gen(9))
    assert all(torch.equal(early[k], late[k]) for k in w)  # same programmed devices
    again = PCM(t_inference=YEAR).sample(w, gen(9))
    assert all(torch.equal(again[k], PCM(t_inference=YEAR).sample(w, gen(9))[k]) for k in w)
    other = PCM(t_inference=YEAR).sample(w, gen(10))
    assert not torch.equal(other["a.weight"], again["a.weight"])


def test_biases_are_digital_by_default_or_their_layers_extra_column():
    g = gen(6)
    p = {
        "fc.weight": torch.randn(4, 3, generator=g),
        "fc.bias": 10 * torch.ones(4),
        "gru.weight_ih_l0": torch.randn(6, 2, generator=g),
        "gru.bias_ih_l0": torch.randn(6, generator=g),
        "lone.bias": torch.randn(5, generator=g),
        "bn.running_var": torch.rand(4, generator=g) + 0.5,
        "scalar": torch.tensor(0.7),
        "empty.weight": torch.zeros(0, 3),
    }
    digital = PCM(t_inference=3600.0)
    assert digital.arrays(p) == [
        ("fc.weight",),
        ("gru.weight_ih_l0",),
        ("bn.running_var",),
        ("scalar",),
    ]
    out = digital.sample(p, gen())
    for name in ("fc.bias", "gru.bias_ih_l0", "lone.bias", "empty.weight"):
        assert torch.equal(out[name], p[name])
    assert out["scalar"].shape == () and not torch.equal(out["bn.running_var"], p["bn.running_var"])
    chip = PCM(t_inference=3600.0, bias="chip")
    assert chip.arrays(p) == [
        ("fc.weight", "fc.bias"),
        ("gru.weight_ih_l0", "gru.bias_ih_l0"),
        ("lone.bias",),
        ("bn.running_var",),
        ("scalar",),
    ]
    out = chip.sample({k: p[k] for k in ("fc.weight", "fc.bias")}, gen(8))
    joined = torch.cat([p["fc.weight"].reshape(-1), p["fc.bias"]]).double().numpy()
    expected = ref.chip(joined, draws(8, joined.size), 3600.0)  # one scale: max|b| = 10
    np.testing.assert_allclose(
        torch.cat([out["fc.weight"].reshape(-1), out["fc.bias"]]), expected, rtol=1e-5, atol=1e-6
    )


def test_all_zero_array_stays_zero_and_inputs_are_untouched():
    p = {"z.weight": torch.zeros(3, 3), "w.weight": torch.randn(3, 3, generator=gen())}
    before = {k: v.clone() for k, v in p.items()}
    out = PCM(t_inference=YEAR, drift_compensation=True).sample(p, gen())
    assert torch.equal(out["z.weight"], p["z.weight"])
    assert all(torch.equal(p[k], before[k]) for k in p)


@pytest.mark.parametrize(
    ("bad", "message"),
    [
        ({"t_inference": -1.0}, "t_inference"),
        ({"t_inference": float("inf")}, "t_inference"),
        ({"t_inference": float("nan")}, "t_inference"),
        ({"g_max": 0.0}, "g_max"),
        ({"t0": -20.0}, "t0"),
        ({"t_read": 0.0}, "t_read"),
        ({"prog_coeff": []}, "prog_coeff"),
        ({"prog_coeff": [0.2, float("nan")]}, "prog_coeff"),
        ({"prog_coeff_g_max_reference": 0.0}, "prog_coeff_g_max_reference"),
        ({"prog_noise_scale": -1.0}, "prog_noise_scale"),
        ({"read_noise_scale": -1.0}, "read_noise_scale"),
        ({"drift_scale": -0.5}, "drift_scale"),
        ({"bias": "analog"}, "bias"),
        ({"compensation": True}, "compensation"),
    ],
)
def test_bad_parameters_are_one_clear_error(bad, message):
    with pytest.raises(NoiseproofError, match=message):
        noise_models.create({"name": "pcm", **bad})
    with pytest.raises(ValueError, match=message):
        PCM(**bad)


def aihwkit_pcm():
    """aihwkit's PCMLikeNoiseModel class (setup.sh installs aihwkit: an import error fails)."""
    try:
        from aihwkit.inference.noise.pcm import PCMLikeNoiseModel
    except Exception as error:  # a missing package or a compiled extension that fails to load
        pytest.fail(f"aihwkit cannot be imported: {type(error).__name__}: {error}")
    return PCMLikeNoiseModel


@pytest.mark.parametrize("t_inference", [1.0, 3600.0, 86400.0, YEAR])
def test_per_weight_statistics_match_aihwkit(t_inference):
    """aihwkit 1.1.0's apply_noise draws from torch's global generator: seeded inside fork_rng
    so the test leaves the global state as it was."""
    model_cls = aihwkit_pcm()
    rows = 20_000
    w = torch.tensor(np.tile(WEIGHTS, (rows, 1)), dtype=torch.float32)
    with torch.random.fork_rng():
        torch.manual_seed(13)
        theirs = (model_cls().apply_noise(w, t_inference) - w).double().numpy()
    agree(ours(t_inference, rows, seed=14), theirs)


def test_time_sweep_axis_is_log_with_named_ticks():
    levels = [0.0, 1.0, 3600.0, 86400.0, 2592000.0, YEAR]
    figure, axes = plt.subplots()
    level_axis(axes, "pcm", levels, time_axis=True)
    assert axes.get_xscale() == "log"
    labels = [t.get_text() for t in axes.get_xticklabels()]
    assert labels == ["0", "1 s", "1 h", "1 day", "1 month", "1 year"]
    assert axes.get_xticks()[0] == zero_position(levels) == 0.1
    plain, other = plt.subplots()
    level_axis(other, "relative_gaussian", [0.0, 0.5], time_axis=False)
    assert other.get_xscale() == "linear" and other.get_xlabel() == "relative_gaussian level"
    gaussian = [{"noise": "g", "config": {"noise": {"name": "relative_gaussian"}}}]
    assert not is_time_sweep(gaussian, "g")
    plt.close(figure)
    plt.close(plain)


def test_compare_sweeps_time_with_and_without_compensation(tmp_path):
    config = {
        "dataset": "moons",
        "model": "mlp",
        "methods": [  # noise-trained: through pcm's programming-time draw (t_inference 0)
            "standard",
            {"name": "noise_injection", "level": 0},
            "hardware_aware",  # no level: the first noise entry's own t_inference, 0
        ],
        "noise": [
            {"name": "pcm", "label": "pcm"},
            {"name": "pcm", "drift_compensation": True, "label": "pcm-compensated"},
        ],
        "levels": [0, 3600, YEAR],
        "transfers": 2,
        "train": {"epochs": 1},
    }
    path = tmp_path / "pcm.yaml"
    path.write_text(yaml.safe_dump(config))
    out = tmp_path / "run"
    result = CliRunner().invoke(
        cli, ["compare", "--config", str(path), "--no-progress", "--out", str(out)]
    )
    assert result.exit_code == 0, result.output
    jobs = json.loads((out / "results.json").read_text())["jobs"]
    assert {(j["noise"], j["level"]) for j in jobs} == {
        (noise, level) for noise in ("pcm", "pcm-compensated") for level in (0, 3600, YEAR)
    }
    assert len(jobs) == 3 * 2 * 3
    assert (out / "accuracy_pcm-compensated.png").is_file()
    assert is_time_sweep(jobs, "pcm") and is_time_sweep(jobs, "pcm-compensated")

"""The tio2_crossbar noise model: each effect against its formula, switches, level, ranges.

Statistical checks use fixed seeds; tolerances are 5 standard errors of the estimated
statistic (mean: sigma / sqrt(n); std: sigma / sqrt(2 n); proportion: sqrt(p (1-p) / n)).
"""

from __future__ import annotations

import math

import pytest
import torch

from noiseproof.errors import NoiseproofError
from noiseproof.noise import noise_models
from noiseproof.noise.crossbar import (
    MEASURED_DISTURB_US,
    TiO2Crossbar,
    cells_after,
    wire_segments,
)
from reference.crossbar_reference import programming_order_cells_after, series_segments

OFF = {
    "offset": False,
    "programming_noise": False,
    "disturb": False,
    "stuck": False,
    "clip": False,
}


def gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def only(**on) -> TiO2Crossbar:
    """A crossbar with every effect off except those switched on in `on`."""
    return TiO2Crossbar(**{**OFF, **on})


def column(n: int, value: float | None = None) -> torch.Tensor:
    """n target conductances (uS, float64): all `value`, else spread over [100, 500]."""
    if value is not None:
        return torch.full((n,), value, dtype=torch.float64)
    return torch.linspace(100.0, 500.0, n, dtype=torch.float64)


def params(seed: int = 0) -> dict[str, torch.Tensor]:
    g = gen(seed)
    return {
        "0.weight": torch.randn(8, 2, generator=g),
        "0.bias": torch.randn(8, generator=g),
        "2.weight": torch.randn(1, 8, generator=g),
        "2.bias": torch.randn(1, generator=g),
    }


def test_registered_with_published_defaults():
    model = noise_models.create("tio2_crossbar")
    assert model.level == 1.0 and model.level_field == "strength"
    assert (model.mapping.g_min, model.mapping.g_max) == pytest.approx((100.0, 500.0))
    assert (model.offset_mean_pct, model.offset_std_pct) == (-0.589, 0.339)
    assert (model.noise_a_per_us, model.noise_b_pct) == (-6.24e-4, 0.691)
    assert (model.stuck_lrs_fraction, model.stuck_hrs_fraction) == (0.005, 0.005)
    assert noise_models.create(model.spec()) == model


def test_level_zero_is_ideal_and_reports_no_stuck():
    p = params()
    weights, masks = TiO2Crossbar(strength=0.0, line_resistance=True).sample_with_faults(p, gen())
    for name, tensor in p.items():
        assert torch.equal(weights[name], tensor)
        assert name not in masks or not masks[name].any()


def test_every_effect_off_is_ideal():
    p = params()
    weights = only().sample(p, gen())
    assert all(torch.equal(weights[n], p[n]) for n in p)


def test_offset_matches_its_formula():
    n = 200_000
    g = column(n, 300.0)
    actual, _ = only(offset=True).program_column(g, gen(1))
    o = (actual / g - 1) * 100  # percent
    mean, std = -0.589, 0.339
    assert float(o.mean()) == pytest.approx(mean, abs=5 * std / math.sqrt(n))
    assert float(o.std()) == pytest.approx(std, abs=5 * std / math.sqrt(2 * n))


@pytest.mark.parametrize("g_value, sigma", [(100.0, 0.6286), (500.0, 1.895)])
def test_programming_noise_matches_its_formula(g_value, sigma):
    n = 200_000
    model = only(programming_noise=True)
    g = column(n, g_value)
    assert float(model.programming_sigma(g[:1])) == pytest.approx(sigma, rel=1e-3)
    actual, _ = model.program_column(g, gen(2))
    dev = actual - g
    assert float(dev.mean()) == pytest.approx(0.0, abs=5 * sigma / math.sqrt(n))
    assert float(dev.std()) == pytest.approx(sigma, abs=5 * sigma / math.sqrt(2 * n))


def test_cells_after_follows_row_major_programming_of_the_crossbar():
    assert cells_after(torch.Size([8, 2])).tolist() == programming_order_cells_after(8, 2)
    assert cells_after(torch.Size([5])).tolist() == [4, 3, 2, 1, 0]


def test_measured_disturb_is_the_default_and_matches_its_statistics():
    """dG of the cell with n cells after it ~ N(mu_k, sd_k), k = n + 1 (authors' indexing)."""
    assert TiO2Crossbar().disturb_model == "measured"
    model = only(disturb=True)
    shape = torch.Size([8, 2])  # the 2-8-1 network's first weight: 16 cells, n = 15 .. 0
    draws = 20_000
    g = gen(4)
    d = torch.stack([model.disturb_draw(shape, g) for _ in range(draws)])
    n = cells_after(shape)
    stats = torch.tensor(MEASURED_DISTURB_US, dtype=torch.float64)
    mu, sd = stats[(n + 1).clamp(max=len(stats)) - 1].unbind(-1)
    used = n > 0
    assert ((d.mean(0) - mu).abs() <= 5 * sd / math.sqrt(draws))[used].all()
    assert ((d.std(0) - sd).abs() <= 5 * sd / math.sqrt(2 * draws))[used].all()
    assert (d[:, ~used] == 0).all()  # the last programmed cell sees no disturb
    # the published spread of the keys 2..16 this array uses: 8.2 .. 13.9 uS
    assert float(sd[used].min()) == 8.22 and float(sd[used].max()) == 13.92
    far = model.disturb_draw(torch.Size([100]), gen(5))  # n >= 43 saturates at the last key
    assert far[0] != 0 and len(MEASURED_DISTURB_US) == 43


def test_parametric_disturb_matches_its_formula():
    model = only(disturb=True, disturb_model="gaussian")
    shape = torch.Size([8, 2])
    draws = 20_000
    g = gen(3)
    d = torch.stack([model.disturb_draw(shape, g) for _ in range(draws)])
    n = cells_after(shape).double()
    f = 1 - torch.exp(-n / model.disturb_cells)
    sd = model.disturb_std_us * f
    mean_tol = 5 * sd / math.sqrt(draws)
    assert ((d.mean(0) - model.disturb_mean_us * f).abs() <= mean_tol + 1e-12).all()
    assert ((d.std(0) - sd).abs() <= 5 * sd / math.sqrt(2 * draws) + 1e-12).all()
    assert (d[:, n == 0] == 0).all()  # the last programmed cell sees no disturb


def test_disturb_table_from_csv(tmp_path):
    table = tmp_path / "disturb.csv"
    table.write_text("cells_after,delta_g_us\n0,0.0\n4,1.0\n4,3.0\n10,-2.0\n")
    model = only(disturb=True, disturb_table=str(table))
    draws = torch.stack([model.disturb_draw(torch.Size([12]), gen(s)) for s in range(400)])
    n = cells_after(torch.Size([12]))  # 11 .. 0
    assert set(draws[:, n == 0].unique().tolist()) == {0.0}
    assert set(draws[:, n == 2].unique().tolist()) == {0.0}  # nearest key 0 (tie goes low)
    assert set(draws[:, n == 5].unique().tolist()) == {1.0, 3.0}  # nearest key 4
    assert set(draws[:, n >= 8].unique().tolist()) == {-2.0}
    share = float((draws[:, n == 4] == 1.0).double().mean())
    assert share == pytest.approx(0.5, abs=5 * math.sqrt(0.25 / 400))


@pytest.mark.parametrize(
    "text, message",
    [("n,dg\n1,2\n", "lacks column"), ("cells_after,delta_g_us\nx,1\n", "not numbers")],
)
def test_bad_disturb_table_is_one_clear_error(tmp_path, text, message):
    path = tmp_path / "bad.csv"
    path.write_text(text)
    with pytest.raises(NoiseproofError, match=message) as info:
        noise_models.create({"name": "tio2_crossbar", "disturb_table": str(path)})
    assert "\n" not in str(info.value)
    with pytest.raises(NoiseproofError, match="not found"):
        noise_models.create({"name": "tio2_crossbar", "disturb_table": str(tmp_path / "no")})


def test_stuck_devices_match_published_fractions_and_distributions():
    n = 400_000
    g = column(n)
    actual, stuck = only(stuck=True).program_column(g, gen(4))
    p = 0.01
    assert float(stuck.double().mean()) == pytest.approx(p, abs=5 * math.sqrt(p * (1 - p) / n))
    assert torch.equal(actual[~stuck], g[~stuck])  # working devices untouched
    values = actual[stuck]
    lrs, hrs = values[values > 100.0], values[values <= 100.0]
    # an LRS-stuck value <= 100 uS has probability Phi(-4.8): negligible at these counts
    k = len(values)
    assert len(lrs) / k == pytest.approx(0.5, abs=5 * math.sqrt(0.25 / k))
    assert float(lrs.mean()) == pytest.approx(573.0, abs=5 * 99.0 / math.sqrt(len(lrs)))
    assert float(lrs.std()) == pytest.approx(99.0, abs=5 * 99.0 / math.sqrt(2 * len(lrs)))
    assert float(hrs.min()) >= 10.0 and float(hrs.max()) <= 100.0
    hrs_sd = 90.0 / math.sqrt(12)
    assert float(hrs.mean()) == pytest.approx(55.0, abs=5 * hrs_sd / math.sqrt(len(hrs)))


def test_stuck_mask_marks_weights_with_a_stuck_device():
    model = only(stuck=True, stuck_lrs_fraction=0.2, stuck_hrs_fraction=0.2)
    p = {"w": torch.randn(50, 40, generator=gen(5))}
    programmed = model.program(p, gen(6))["w"]
    pos, neg = programmed.stuck_columns
    assert torch.equal(programmed.stuck, pos | neg)
    weights, masks = model.sample_with_faults(p, gen(6))
    assert torch.equal(masks["w"], pos | neg)
    assert torch.equal(weights["w"][~masks["w"]], p["w"][~masks["w"]])
    assert not torch.equal(weights["w"][masks["w"]], p["w"][masks["w"]])


def test_working_devices_stay_in_the_window_stuck_ones_may_not():
    model = TiO2Crossbar(stuck_lrs_fraction=0.05, stuck_hrs_fraction=0.05)
    programmed = model.program({"w": torch.randn(64, 64, generator=gen(7))}, gen(8))["w"]
    outside = False
    for g, stuck in zip(programmed.actual.columns, programmed.stuck_columns, strict=True):
        assert g[~stuck].min() >= 100.0 and g[~stuck].max() <= 500.0
        outside |= bool(((g[stuck] < 100.0) | (g[stuck] > 500.0)).any())
    assert outside
    # without clipping the published noise leaves the window (this is what clip guards)
    free = TiO2Crossbar(stuck=False, clip=False)
    raw = free.program({"w": torch.randn(64, 64, generator=gen(7))}, gen(8))["w"].actual
    assert float(raw.positive.min()) < 100.0


def test_line_resistance_matches_first_order_formula():
    model = only(line_resistance=True, wire_ohm=5.0)
    g = column(6).reshape(2, 3)  # a [out=2, in=3] weight: crossbar of 3 rows x 2 columns
    actual, _ = model.program_column(g, gen())
    segments = series_segments(rows=3, cols=2)
    for o in range(2):
        for i in range(3):
            expected = float(g[o, i]) / (1 + float(g[o, i]) * 1e-6 * 5.0 * segments[i][o])
            assert float(actual[o, i]) == pytest.approx(expected, rel=1e-12)
    assert wire_segments(torch.Size([2, 3])).tolist() == [[4, 3, 2], [5, 4, 3]]
    assert not TiO2Crossbar().line_resistance  # off by default


def test_level_scales_every_random_effect_linearly():
    """Draws do not depend on the level: deviations at level s are s times those at level 1."""
    effects = {"offset": True, "programming_noise": True, "disturb": True}
    g = column(1000).reshape(10, 100)
    full, _ = only(**effects).program_column(g, gen(9))
    half, _ = only(**effects, strength=0.5).program_column(g, gen(9))
    torch.testing.assert_close(half - g, 0.5 * (full - g), rtol=1e-9, atol=1e-9)
    _, stuck_full = only(stuck=True).program_column(column(100_000), gen(10))
    _, stuck_half = only(stuck=True, strength=0.5).program_column(column(100_000), gen(10))
    assert bool((stuck_half <= stuck_full).all())  # nested: the same devices, fewer of them
    n = 100_000
    assert float(stuck_half.double().mean()) == pytest.approx(0.005, abs=5 * math.sqrt(0.005 / n))


def test_bias_scale_and_single_element_options():
    p = {"l.weight": torch.tensor([[2.0], [-1.0]]), "l.bias": torch.tensor([0.5, -0.25])}
    own = only().program(p, gen())
    layer = only(bias_scale="layer").program(p, gen())
    assert float(own["l.bias"].target.scale) == 0.5
    assert float(layer["l.bias"].target.scale) == 2.0
    assert layer["l.bias"].target.positive.tolist() == pytest.approx([200.0, 100.0])
    one = {"b": torch.tensor([0.7])}
    assert "b" not in TiO2Crossbar().program(one, gen())
    assert torch.equal(TiO2Crossbar().sample(one, gen())["b"], one["b"])
    assert "b" in TiO2Crossbar(single_element="map").program(one, gen())


@pytest.mark.parametrize(
    "bad, message",
    [
        ({"strength": -1}, "strength"),
        ({"r_lrs_ohm": 2e4}, "r_lrs_ohm"),
        ({"stuck_lrs_fraction": 0.7, "stuck_hrs_fraction": 0.6}, "stuck"),
        ({"offset_std_pct": -0.1}, "offset_std_pct"),
        ({"scheme": "triple"}, "scheme"),
    ],
)
def test_bad_parameters_are_one_clear_error(bad, message):
    with pytest.raises(NoiseproofError, match=message) as info:
        noise_models.create({"name": "tio2_crossbar", **bad})
    assert "\n" not in str(info.value)


def test_inputs_are_never_modified():
    p = params()
    before = {n: t.clone() for n, t in p.items()}
    TiO2Crossbar(stuck_lrs_fraction=0.3).sample(p, gen())
    assert all(torch.equal(p[n], before[n]) for n in p)

"""Noise models: statistics of many seeded draws against their formulas, identity at level 0,
reproducibility, no in-place edits, validation, registry and chains.

Statistical tolerances are 5 standard errors of the estimator under the model's own
distribution (a false alarm about once in 1.7 million runs); every draw is seeded, so each test
is deterministic anyway.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from torch import Tensor

from noiseproof.errors import NoiseproofError
from noiseproof.noise import create_noise, noise_models
from noiseproof.noise.compose import Chain
from reference.noise_reference import (
    STUCK_MINUS,
    STUCK_PLUS,
    STUCK_ZERO,
    quantize,
    quantize_tie_distance,
    stuck_at,
)

Z = 5.0  # standard errors allowed in every statistical comparison
DRAWS = 40  # transfers per statistical test

CHAIN = {"name": "chain", "models": [{"name": "quantize", "levels": 9}, "relative_gaussian"]}
ZERO_MEMBERS = [{"name": "lognormal", "sigma": 0}, {"name": "stuck_at", "p": 0}]
RANDOM_SPECS = [
    {"name": "relative_gaussian", "zeta": 0.3},
    {"name": "additive_gaussian", "eta": 0.1, "scale": "layer"},
    {"name": "additive_gaussian", "eta": 0.1, "scale": "channel"},
    {"name": "lognormal", "sigma": 0.4},
    {"name": "stuck_at", "p": 0.2, "high_share": 0.5},
    {**CHAIN, "sweep": 1},
]
ALL_SPECS = [*RANDOM_SPECS, {"name": "quantize", "levels": 7}]


def spec_id(spec: dict) -> str:
    return "-".join(str(v) for v in spec.values() if not isinstance(v, list))


def chip(seed: int = 0, rows: int = 64, cols: int = 50, dtype=torch.float32) -> dict:
    """A two-tensor 'chip': weights with |w| in [0.2, 1] and random signs, plus a bias."""
    g = torch.Generator().manual_seed(seed)
    magnitude = 0.2 + 0.8 * torch.rand(rows, cols, generator=g, dtype=torch.float64)
    sign = torch.where(torch.rand(rows, cols, generator=g) < 0.5, -1.0, 1.0).double()
    bias = 0.05 + 0.3 * torch.rand(rows, generator=g, dtype=torch.float64)
    return {"fc.weight": (magnitude * sign).to(dtype), "fc.bias": bias.to(dtype)}


def draws(spec: dict, params: dict, seed: int = 1, count: int = DRAWS) -> list[dict]:
    """`count` transfers of `params` from one generator seeded with `seed`."""
    model = create_noise(spec)
    g = torch.Generator().manual_seed(seed)
    return [model.sample(params, g) for _ in range(count)]


def stacked(samples: list[dict], name: str) -> torch.Tensor:
    return torch.stack([s[name] for s in samples]).double()


def assert_standard_normal(z: torch.Tensor) -> None:
    """Mean 0 and variance 1 within Z standard errors (SE of the variance: sqrt(2/(n-1)))."""
    n = z.numel()
    assert abs(float(z.mean())) < Z / math.sqrt(n)
    assert abs(float(z.var()) - 1.0) < Z * math.sqrt(2.0 / (n - 1))


# ---------------------------------------------------------------- relative Gaussian


def test_relative_gaussian_deviation_is_zeta_times_standard_normal():
    zeta = 0.3
    params = chip()
    samples = draws({"name": "relative_gaussian", "zeta": zeta}, params)
    for name, clean in params.items():
        relative = (stacked(samples, name) - clean.double()) / clean.double()
        assert_standard_normal(relative / zeta)


def test_relative_gaussian_redraws_independently_every_transfer():
    params = chip()
    samples = draws({"name": "relative_gaussian", "zeta": 0.3}, params, count=2)
    a, b = ((s["fc.weight"].double() / params["fc.weight"].double() - 1).flatten() for s in samples)
    correlation = float(torch.corrcoef(torch.stack([a, b]))[0, 1])
    assert abs(correlation) < Z / math.sqrt(a.numel())


# ---------------------------------------------------------------- additive Gaussian


def test_additive_gaussian_layer_scale_is_eta_times_layer_max():
    eta = 0.1
    params = chip()
    samples = draws({"name": "additive_gaussian", "eta": eta, "scale": "layer"}, params)
    for name, clean in params.items():
        scale = eta * float(clean.abs().max())
        assert_standard_normal((stacked(samples, name) - clean.double()) / scale)


def test_additive_gaussian_channel_scale_uses_each_output_channels_max():
    eta = 0.1
    params = chip()
    # rows with very different maxima: a per-layer scale would fail every row but the last
    rows = params["fc.weight"].shape[0]
    params["fc.weight"] = params["fc.weight"] * torch.linspace(0.05, 1.0, rows)[:, None]
    samples = draws({"name": "additive_gaussian", "eta": eta, "scale": "channel"}, params)
    weight = params["fc.weight"].double()
    row_max = weight.abs().amax(dim=1, keepdim=True)
    z = (stacked(samples, "fc.weight") - weight) / (eta * row_max)
    assert_standard_normal(z)
    per_row_var = z.transpose(0, 1).reshape(rows, -1).var(dim=1)
    n_row = z.numel() // rows
    assert (per_row_var - 1).abs().max() < Z * math.sqrt(2.0 / (n_row - 1))
    # a 1-d tensor (bias) has no channels: its scale is the tensor's max
    bias = params["fc.bias"].double()
    assert_standard_normal((stacked(samples, "fc.bias") - bias) / (eta * bias.abs().max()))


def test_additive_gaussian_channel_scale_on_conv_weights():
    eta = 0.2
    g = torch.Generator().manual_seed(3)
    weight = torch.randn(8, 3, 5, 5, generator=g) * torch.arange(1, 9).view(8, 1, 1, 1)
    samples = draws({"name": "additive_gaussian", "eta": eta, "scale": "channel"}, {"w": weight})
    row_max = weight.double().abs().flatten(1).amax(dim=1).view(8, 1, 1, 1)
    assert_standard_normal((stacked(samples, "w") - weight.double()) / (eta * row_max))


# ---------------------------------------------------------------- log-normal


def test_lognormal_log_ratio_is_normal_with_std_sigma():
    sigma = 0.4
    params = chip()
    samples = draws({"name": "lognormal", "sigma": sigma}, params)
    for name, clean in params.items():
        noisy = stacked(samples, name)
        assert torch.equal(torch.sign(noisy), torch.sign(clean.double()).expand_as(noisy))
        assert_standard_normal(torch.log(noisy / clean.double()) / sigma)


def test_lognormal_factor_mean_is_exp_half_sigma_squared():
    sigma = 0.4
    params = chip()
    factor = stacked(draws({"name": "lognormal", "sigma": sigma}, params), "fc.weight")
    factor = factor / params["fc.weight"].double()
    mean = math.exp(sigma**2 / 2)
    std = math.sqrt((math.exp(sigma**2) - 1) * math.exp(sigma**2))
    assert abs(float(factor.mean()) - mean) < Z * std / math.sqrt(factor.numel())


# ---------------------------------------------------------------- quantize


@pytest.mark.parametrize("levels", [2, 3, 4, 7, 16, 255])
def test_quantize_matches_the_reference_grid(levels):
    weight = chip(seed=levels)["fc.weight"]
    model = create_noise({"name": "quantize", "levels": levels})
    out = model.sample({"w": weight}, torch.Generator().manual_seed(0))["w"]
    expected = quantize(weight.numpy(), levels)
    not_a_tie = quantize_tie_distance(weight.numpy(), levels) > 1e-4
    top = float(weight.abs().max())
    ours = out.double().numpy()
    np.testing.assert_allclose(ours[not_a_tie], expected[not_a_tie], atol=1e-6 * top)
    assert out.dtype == weight.dtype


@pytest.mark.parametrize("levels", [2, 3, 5, 8, 15, 16])
def test_quantize_grid_properties(levels):
    model = create_noise({"name": "quantize", "levels": levels})
    g = torch.Generator().manual_seed(0)
    for seed in range(20):
        weight = torch.randn(40, 30, generator=torch.Generator().manual_seed(seed))
        top = weight.abs().max()
        step = 2 * top / (levels - 1)
        out = model.sample({"w": weight}, g)["w"]
        assert len(out.unique()) <= levels
        assert (out - weight).abs().max() <= step / 2 * (1 + 1e-5)
        # idempotent: a quantised tensor is already on its own grid
        assert torch.equal(model.sample({"w": out}, g)["w"], out)
        # the extreme weight is kept exactly, and the grid ends at +-max|W|
        assert out.abs().max() == top
        # symmetric: q(-w) = -q(w), except exactly at a midpoint where both neighbours are nearest
        mirrored = model.sample({"w": -weight}, g)["w"]
        differ = mirrored != -out
        tie = torch.from_numpy(quantize_tie_distance(weight.numpy(), levels) < 1e-4)
        assert not (differ & ~tie).any()
        if levels % 2:  # an odd grid contains exact 0
            assert (out[weight.abs() < step / 4] == 0).all()


def test_quantize_is_deterministic_and_draws_nothing():
    model = create_noise({"name": "quantize", "levels": 5})
    params = chip()
    g = torch.Generator().manual_seed(0)
    state = g.get_state()
    first = model.sample(params, g)
    assert torch.equal(g.get_state(), state)
    second = model.sample(params, torch.Generator().manual_seed(99))
    assert all(torch.equal(first[n], second[n]) for n in params)


def test_quantize_all_zero_tensor_stays_zero():
    zeros = torch.zeros(3, 4)
    out = create_noise("quantize").sample({"w": zeros}, torch.Generator())["w"]
    assert torch.equal(out, zeros)
    assert out.data_ptr() != zeros.data_ptr()


# ---------------------------------------------------------------- stuck-at


def stuck_categories(noisy: torch.Tensor, clean: torch.Tensor, top: float) -> dict[str, Tensor]:
    """Masks of healthy / stuck-at-0 / +top / -top elements (each element in exactly one)."""
    masks = {
        "healthy": noisy == clean,
        "zero": noisy == 0,
        "plus": noisy == top,
        "minus": noisy == -top,
    }
    assert torch.equal(sum(m.long() for m in masks.values()), torch.ones_like(noisy).long())
    return masks


@pytest.mark.parametrize(("p", "high_share"), [(0.01, 0.5), (0.2, 0.3), (0.5, 1.0), (0.3, 0.0)])
def test_stuck_at_fault_fractions_match_the_formula(p, high_share):
    params = chip()
    samples = draws({"name": "stuck_at", "p": p, "high_share": high_share}, params, count=10)
    for name, clean in params.items():
        keep = clean.abs() < clean.abs().max()  # the max element itself is ambiguous when stuck
        noisy = torch.stack([s[name] for s in samples])[:, keep]
        masks = stuck_categories(noisy, clean[keep].expand_as(noisy), clean.abs().max())
        n = noisy.numel()
        expected = {
            "healthy": 1 - p,
            "zero": p * (1 - high_share),
            "plus": p * high_share / 2,
            "minus": p * high_share / 2,
        }
        for category, prob in expected.items():
            observed = float(masks[category].double().mean())
            assert abs(observed - prob) <= Z * math.sqrt(prob * (1 - prob) / n), category


def test_stuck_at_agrees_with_the_elementwise_reference():
    p, high_share = 0.25, 0.6
    weight = chip()["fc.weight"]
    keep = (weight.abs() < weight.abs().max()).numpy()
    samples = draws({"name": "stuck_at", "p": p, "high_share": high_share}, {"w": weight}, count=8)
    ours = torch.stack([s["w"] for s in samples])[:, keep]
    ours = stuck_categories(ours, weight[keep].expand_as(ours), weight.abs().max())
    rng = np.random.default_rng(12345)
    runs = [stuck_at(weight.numpy(), p, high_share, rng) for _ in range(8)]
    ref_out, ref_cat = (np.stack([run[i] for run in runs])[:, keep] for i in (0, 1))
    # the reference's values follow its categories exactly
    top = float(np.abs(weight.numpy()).max())
    assert np.all(ref_out[ref_cat == STUCK_PLUS] == top)
    assert np.all(ref_out[ref_cat == STUCK_MINUS] == -top)
    assert np.all(ref_out[ref_cat == STUCK_ZERO] == 0)
    n_ours, n_ref = ours["zero"].numel(), ref_cat.size
    pairs = {"zero": STUCK_ZERO, "plus": STUCK_PLUS, "minus": STUCK_MINUS}
    for category, code in pairs.items():
        ref_share = float(np.mean(ref_cat == code))
        our_share = float(ours[category].double().mean())
        prob = (ref_share * n_ref + our_share * n_ours) / (n_ref + n_ours)
        se = math.sqrt(prob * (1 - prob) * (1 / n_ours + 1 / n_ref))
        assert abs(our_share - ref_share) <= Z * se, category


def test_stuck_at_uses_each_tensors_own_max():
    params = {"a": torch.tensor([0.5, -1.0, 0.25] * 100), "b": torch.tensor([3.0, 2.0] * 100)}
    out = create_noise({"name": "stuck_at", "p": 1.0, "high_share": 1.0}).sample(
        params, torch.Generator().manual_seed(0)
    )
    assert set(out["a"].abs().tolist()) == {1.0}
    assert set(out["b"].abs().tolist()) == {3.0}
    assert {1.0, -1.0} <= set(out["a"].tolist())  # both signs occur


# ---------------------------------------------------------------- shared behaviour


@pytest.mark.parametrize(
    "spec",
    [
        {"name": "relative_gaussian", "zeta": 0.0},
        {"name": "additive_gaussian", "eta": 0.0, "scale": "layer"},
        {"name": "additive_gaussian", "eta": 0.0, "scale": "channel"},
        {"name": "lognormal", "sigma": 0.0},
        {"name": "stuck_at", "p": 0.0},
        {"name": "chain", "models": ZERO_MEMBERS},
    ],
    ids=spec_id,
)
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_level_zero_is_the_exact_identity(spec, dtype):
    params = chip(dtype=dtype)
    out = create_noise(spec).sample(params, torch.Generator().manual_seed(0))
    assert list(out) == list(params)
    for name in params:
        assert torch.equal(out[name], params[name])
        assert out[name].dtype == dtype


@pytest.mark.parametrize("spec", RANDOM_SPECS, ids=spec_id)
def test_with_level_zero_is_the_identity(spec):
    params = chip()
    model = create_noise(spec).with_level(0.0)
    assert model.level == 0.0
    out = model.sample(params, torch.Generator().manual_seed(0))
    expected = params
    if spec["name"] == "chain":  # level 0 zeroes the swept member only: quantize stays
        expected = create_noise(spec["models"][0]).sample(params, torch.Generator())
    assert all(torch.equal(out[n], expected[n]) for n in params)


@pytest.mark.parametrize("spec", ALL_SPECS, ids=spec_id)
def test_same_seed_same_draws_different_seed_different_draws(spec):
    params = chip(rows=8, cols=6)
    model = create_noise(spec)
    first = model.sample(params, torch.Generator().manual_seed(7))
    again = model.sample(params, torch.Generator().manual_seed(7))
    other = model.sample(params, torch.Generator().manual_seed(8))
    assert all(torch.equal(first[n], again[n]) for n in params)
    if spec["name"] != "quantize":  # deterministic by design
        assert not all(torch.equal(first[n], other[n]) for n in params)


@pytest.mark.parametrize("spec", ALL_SPECS, ids=spec_id)
def test_inputs_are_never_modified(spec):
    params = {n: torch.nn.Parameter(t) for n, t in chip(rows=8, cols=6).items()}
    before = {n: t.detach().clone() for n, t in params.items()}
    out = create_noise(spec).sample(params, torch.Generator().manual_seed(0))
    for name in params:
        assert torch.equal(params[name], before[name])
        assert out[name].data_ptr() != params[name].data_ptr()
        assert not out[name].requires_grad


@pytest.mark.parametrize("spec", ALL_SPECS, ids=spec_id)
def test_spec_round_trip(spec):
    model = create_noise(spec)
    assert create_noise(model.spec()) == model
    assert create_noise(model) is model


@pytest.mark.parametrize(
    ("spec", "level"),
    [
        ({"name": "relative_gaussian"}, 0.7),
        ({"name": "additive_gaussian", "scale": "channel"}, 0.2),
        ({"name": "lognormal"}, 0.1),
        ({"name": "stuck_at", "high_share": 0.2}, 0.05),
        ({"name": "quantize"}, 4),
    ],
    ids=lambda v: spec_id(v) if isinstance(v, dict) else str(v),
)
def test_with_level_sets_the_sweep_parameter_and_keeps_the_rest(spec, level):
    model = create_noise(spec)
    moved = model.with_level(level)
    assert moved.level == level
    assert getattr(moved, type(model).level_field) == level
    others = {k: v for k, v in model.model_dump().items() if k != type(model).level_field}
    assert {k: moved.model_dump()[k] for k in others} == others
    assert model.level != level  # the original is untouched (frozen)


RANDOM_NAMES = ["relative_gaussian", "additive_gaussian", "lognormal", "stuck_at"]


@pytest.mark.parametrize("name", RANDOM_NAMES)
@pytest.mark.parametrize("bad", [-0.1, float("nan"), float("inf")])
def test_with_level_rejects_bad_levels(name, bad):
    model = create_noise(name)
    with pytest.raises(NoiseproofError) as caught:
        model.with_level(bad)
    message = str(caught.value)
    assert "\n" not in message
    assert type(model).level_field in message and name in message


@pytest.mark.parametrize("bad", [1, 0, -3, float("nan"), 2.5])
def test_quantize_rejects_bad_levels(bad):
    with pytest.raises(NoiseproofError, match="levels"):
        create_noise("quantize").with_level(bad)


def test_chain_with_level_validates_its_swept_member():
    chain = create_noise({"name": "chain", "models": ["quantize", "lognormal"], "sweep": 1})
    with pytest.raises(NoiseproofError, match="sigma"):
        chain.with_level(-1.0)


@pytest.mark.parametrize(
    ("spec", "field"),
    [
        ({"name": "relative_gaussian", "zeta": -1}, "zeta"),
        ({"name": "additive_gaussian", "scale": "row"}, "scale"),
        ({"name": "stuck_at", "high_share": 2}, "high_share"),
        ({"name": "lognormal", "sigmaa": 0.1}, "sigmaa"),
        ({"name": "chain", "models": []}, "models"),
        ({"name": "chain", "models": ["lognormal"], "sweep": 1}, "sweep"),
    ],
)
def test_bad_parameters_give_one_line_naming_the_field(spec, field):
    with pytest.raises(NoiseproofError) as caught:
        create_noise(spec)
    assert field in str(caught.value)
    assert "\n" not in str(caught.value)


def test_unknown_name_lists_the_known_models():
    with pytest.raises(NoiseproofError) as caught:
        create_noise("gaussian_relative")
    message = str(caught.value)
    assert "gaussian_relative" in message
    for name in noise_models.names():
        assert name in message
    expected = {"additive_gaussian", "chain", "lognormal", "quantize", "relative_gaussian"}
    assert {*expected, "stuck_at"} <= set(noise_models.names())


def test_unknown_name_inside_a_chain_is_reported():
    with pytest.raises(NoiseproofError, match="known: "):
        create_noise({"name": "chain", "models": ["nope"]})


def test_spec_without_name_is_refused():
    with pytest.raises(NoiseproofError, match="name"):
        create_noise({"zeta": 0.1})


# ---------------------------------------------------------------- chain


def test_chain_applies_members_in_order_with_one_generator():
    members = [
        {"name": "quantize", "levels": 9},
        {"name": "relative_gaussian", "zeta": 0.2},
        {"name": "stuck_at", "p": 0.1},
        {"name": "additive_gaussian", "eta": 0.05, "scale": "channel"},
    ]
    params = chip(rows=16, cols=12)
    chained = create_noise({"name": "chain", "models": members}).sample(
        params, torch.Generator().manual_seed(5)
    )
    by_hand = dict(params)
    g = torch.Generator().manual_seed(5)
    for member in members:
        by_hand = create_noise(member).sample(by_hand, g)
    assert all(torch.equal(chained[n], by_hand[n]) for n in params)
    # order matters: quantising last leaves every tensor on its grid, quantising first does not
    swapped = create_noise({"name": "chain", "models": [members[1], members[0]]})
    out = swapped.sample(params, torch.Generator().manual_seed(5))
    assert all(len(out[n].unique()) <= 9 for n in params)
    assert any(len(chained[n].unique()) > 9 for n in params)


def test_chain_level_is_its_swept_members_level():
    chain = create_noise(
        {"name": "chain", "models": ["quantize", {"name": "lognormal", "sigma": 0.3}], "sweep": 1}
    )
    assert isinstance(chain, Chain)
    assert chain.level == 0.3
    moved = chain.with_level(0.6)
    assert moved.level == 0.6
    assert moved.models[0] == chain.models[0]
    assert moved.sweep == 1
    assert create_noise(moved.spec()) == moved


def test_stuck_at_reports_its_faults_with_the_same_draws_as_sample():
    params = {"w": torch.randn(40, 30, generator=torch.Generator().manual_seed(1))}
    noise = create_noise({"name": "stuck_at", "p": 0.2})
    plain = noise.sample(params, torch.Generator().manual_seed(7))
    weights, stuck = noise.sample_with_faults(params, torch.Generator().manual_seed(7))
    assert torch.equal(plain["w"], weights["w"])
    healthy = ~stuck["w"]
    assert torch.equal(weights["w"][healthy], params["w"][healthy])
    assert 0 < int(stuck["w"].sum()) < params["w"].numel()


def test_chain_merges_the_stuck_masks_of_its_members():
    params = {"w": torch.randn(40, 30, generator=torch.Generator().manual_seed(2))}
    chain = create_noise(
        {"name": "chain", "models": [{"name": "stuck_at", "p": 0.1}, "relative_gaussian"]}
    )
    first = create_noise({"name": "stuck_at", "p": 0.1})
    _, expected = first.sample_with_faults(params, torch.Generator().manual_seed(3))
    _, stuck = chain.sample_with_faults(params, torch.Generator().manual_seed(3))
    assert torch.equal(stuck["w"], expected["w"])

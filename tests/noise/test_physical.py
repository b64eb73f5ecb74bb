"""Physical ranges: perturbed neuron parameters stay physical, weights are untouched."""

from __future__ import annotations

import math

import pytest
import torch

from noiseproof.bounds import relative_box_point
from noiseproof.evaluation.chipstream import ChipStream
from noiseproof.noise import noise_models
from noiseproof.noise.base import NoiseModel, PerTensorNoise
from noiseproof.physical import (
    DECAY,
    NON_NEGATIVE,
    POSITIVE,
    POSITIVE_FLOOR,
    declare,
    limit,
    range_of,
)

FLOOR = float(torch.tensor(POSITIVE_FLOOR))  # the floor as float32 rounds it


def params(n: int = 20000) -> dict[str, torch.Tensor]:
    gen = torch.Generator().manual_seed(5)
    return {
        "lif.beta": torch.full((n,), 0.95),
        "lif.threshold": torch.ones(n),
        "lif.tau_mem": torch.full((n,), 20.0),
        "lif.adaptation": torch.full((n,), 1.8),
        "fc.weight": torch.randn(n // 100, 100, generator=gen),
        "fc.bias": torch.randn(n // 100, generator=gen),
    }


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("lif1.beta", DECAY),
        ("syn.alpha", DECAY),
        ("cell.decay_mem", DECAY),
        ("lif.threshold", POSITIVE),
        ("lif.tau_adapt", POSITIVE),
        ("out.tau_mem", POSITIVE),
        ("lif.adaptation", NON_NEGATIVE),
        ("fc.weight", None),
        ("gru.weight_hh_l0", None),
        ("fc.bias", None),
        ("bn.running_var", None),
        ("lif.graded_spikes_factor", None),
    ],
)
def test_ranges_by_leaf_name(name, expected):
    assert range_of(name) == expected


def test_beta_under_strong_relative_mismatch_stays_in_unit_interval():
    """0.95 (1 + 0.7 N): P(> 1) = P(N > (1/0.95 - 1)/0.7), P(< 0) = P(N < -1/0.7); those
    shares end exactly on the bounds. Tolerance 5 binomial sigmas, sqrt(p(1-p)/n) <= 0.0036."""
    noise = noise_models.create({"name": "relative_gaussian", "zeta": 0.7})
    beta = noise.sample(params(), torch.Generator().manual_seed(0))["lif.beta"]
    assert float(beta.min()) >= 0.0 and float(beta.max()) <= 1.0
    above = 0.5 * math.erfc((1 / 0.95 - 1) / 0.7 / math.sqrt(2))
    below = 0.5 * math.erfc(1 / 0.7 / math.sqrt(2))
    n, tol = beta.numel(), 5 * math.sqrt(0.25 / beta.numel())
    assert abs(float((beta == 1.0).sum()) / n - above) < tol
    assert abs(float((beta == 0.0).sum()) / n - below) < tol


@pytest.mark.parametrize(
    "spec",
    [
        {"name": "relative_gaussian", "zeta": 1.5},
        {"name": "additive_gaussian", "eta": 3.0},
        {"name": "lognormal", "sigma": 2.0},
        {"name": "chain", "models": ["relative_gaussian", "stuck_at"]},
    ],
)
def test_thresholds_and_time_constants_never_reach_zero(spec):
    noise = noise_models.create(spec)
    for seed in range(3):
        drawn = noise.sample(params(), torch.Generator().manual_seed(seed))
        for name in ("lif.threshold", "lif.tau_mem"):
            assert float(drawn[name].min()) >= FLOOR
        assert float(drawn["lif.adaptation"].min()) >= 0.0
        assert 0.0 <= float(drawn["lif.beta"].min()) <= float(drawn["lif.beta"].max()) <= 1.0


@pytest.mark.parametrize("name", noise_models.names())
def test_every_registered_noise_model_draws_through_the_limits(name):
    """Built-in and plugin models alike: sample is wrapped, and so is sample_with_faults
    unless it is the base class's, which draws through the wrapped sample."""
    cls = noise_models.get(name)
    assert getattr(cls.sample, "_physical", False)
    faults = cls.sample_with_faults
    assert getattr(faults, "_physical", False) or faults is NoiseModel.sample_with_faults


@pytest.mark.parametrize(
    "spec",
    [
        {"name": "relative_gaussian", "zeta": 0.7},
        {"name": "additive_gaussian", "eta": 0.5},
        {"name": "stuck_at"},
        {"name": "chain", "models": ["relative_gaussian", "stuck_at"]},
    ],
)
def test_weights_are_bit_identical_to_the_unlimited_draw(spec):
    """The same generator state through the wrapped draw and the draw before limiting."""
    noise = noise_models.create(spec)
    clean = params(2000)
    limited = noise.sample(clean, torch.Generator().manual_seed(3))
    raw = type(noise).sample.__wrapped__(noise, clean, torch.Generator().manual_seed(3))
    for name in ("fc.weight", "fc.bias"):
        assert torch.equal(limited[name], raw[name])
    assert torch.equal(limited["lif.beta"], raw["lif.beta"].clamp(0, 1))
    assert torch.equal(limited["lif.threshold"], raw["lif.threshold"].clamp(min=POSITIVE_FLOOR))


def test_limit_returns_a_weight_as_the_same_object():
    weight = torch.randn(3, 3)
    assert limit("layer.weight", weight) is weight


def test_vmapped_blocks_of_chips_are_limited_too():
    noise = noise_models.create({"name": "relative_gaussian", "zeta": 0.7})
    clean = {"lif.beta": torch.full((50,), 0.95), "fc.weight": torch.randn(4, 5)}
    stream = ChipStream(noise, clean, 7, torch.device("cpu"))
    assert stream.block > 1  # drawn by one vmapped sample
    chips = stream.chips(0, 64)
    assert float(chips["lif.beta"].min()) >= 0 and float(chips["lif.beta"].max()) <= 1
    assert float(chips["fc.weight"].abs().max()) > 0


class Shift(PerTensorNoise):
    """A plugin-style model: subtracts 5 from everything."""

    def perturb(self, name: str, tensor: torch.Tensor, generator: torch.Generator):
        return tensor - 5.0


class Swap(NoiseModel):
    """A plugin-style model overriding sample itself: negates everything."""

    def sample(self, params, generator):
        return {name: -tensor for name, tensor in params.items()}


@pytest.mark.parametrize("cls", [Shift, Swap])
def test_plugin_noise_models_are_limited_without_doing_anything(cls):
    drawn = cls().sample(params(10 * 100), torch.Generator())
    assert float(drawn["lif.threshold"].min()) == FLOOR
    assert float(drawn["lif.beta"].max()) == 0.0
    assert float(drawn["fc.weight"].abs().max()) > 1  # unbounded
    faulty, masks = cls().sample_with_faults(params(1000), torch.Generator())
    assert float(faulty["lif.threshold"].min()) == FLOOR and masks == {}


def test_attack_box_points_are_limited_and_weights_are_not():
    clean = {"lif.threshold": torch.ones(4), "fc.weight": torch.ones(4)}
    offset = {name: torch.full((4,), -2.0) for name in clean}
    point = relative_box_point(clean, offset)
    assert float(point["lif.threshold"].min()) == FLOOR
    assert torch.equal(point["fc.weight"], torch.full((4,), -1.0))


def test_a_declared_custom_neuron_parameter_is_limited():
    declare("test_v_th", low=POSITIVE_FLOOR)
    declare("test_v_th", low=POSITIVE_FLOOR)  # the same declaration again is fine
    drawn = Shift().sample({"cell.test_v_th": torch.ones(3)}, torch.Generator())
    assert float(drawn["cell.test_v_th"].min()) == FLOOR
    with pytest.raises(ValueError, match="already declared"):
        declare("test_v_th", low=0.0, high=1.0)


@pytest.mark.parametrize(
    ("leaf", "low", "high", "match"),
    [
        ("weight", 0.0, None, "weights stay unbounded"),
        ("weight_hh_l0", 0.0, None, "weights stay unbounded"),
        ("cell.v_th", 0.0, None, "without dots"),
        ("v_reset", None, None, "needs low or high"),
        ("v_gain", 2.0, 1.0, "low must be <= high"),
    ],
)
def test_bad_declarations_are_value_errors(leaf, low, high, match):
    with pytest.raises(ValueError, match=match):
        declare(leaf, low, high)

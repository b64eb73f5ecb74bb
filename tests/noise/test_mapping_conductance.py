"""Weight <-> conductance mapping (Drolet et al. 2023): window, pairs, one column, exact inverse."""

from __future__ import annotations

import pytest
import torch
from pydantic import ValidationError

from noiseproof.noise.mapping import ConductanceMapping
from reference.crossbar_reference import differential_pair, weights_from_pairs, window


def test_window_from_resistances():
    mapping = ConductanceMapping()
    assert (mapping.g_min, mapping.g_max) == pytest.approx(window(2e3, 1e4))
    assert (mapping.g_min, mapping.g_max) == pytest.approx((100.0, 500.0))


@pytest.mark.parametrize("shape", [(8, 2), (1, 8), (8,), (3, 4, 2, 2)])
@pytest.mark.parametrize("scheme", ["auto", "differential"])
def test_round_trip_is_exact(shape, scheme):
    weights = torch.randn(shape, generator=torch.Generator().manual_seed(1))
    mapping = ConductanceMapping(scheme=scheme)
    back = mapping.to_weights(mapping.to_conductance(weights))
    assert back.dtype == weights.dtype
    assert torch.equal(back, weights)


@pytest.mark.parametrize("sign", [1.0, -1.0])
def test_one_column_when_weights_share_a_sign(sign):
    weights = sign * torch.rand(5, 3, generator=torch.Generator().manual_seed(2))
    weights[0, 0] = 0.0
    programmed = ConductanceMapping().to_conductance(weights)
    assert programmed.negative is None and programmed.sign == int(sign)
    assert torch.equal(ConductanceMapping().to_weights(programmed), weights)
    forced = ConductanceMapping(scheme="differential").to_conductance(weights)
    assert forced.negative is not None and forced.sign == 0


def test_conductances_match_reference_and_stay_in_window():
    weights = torch.randn(6, 4, generator=torch.Generator().manual_seed(3), dtype=torch.float64)
    mapping = ConductanceMapping(scheme="differential")
    programmed = mapping.to_conductance(weights)
    g_min, g_max = window()
    pairs = differential_pair(weights.reshape(-1).tolist(), g_min, g_max)
    assert programmed.positive.reshape(-1).tolist() == pytest.approx([p for p, _ in pairs])
    assert programmed.negative.reshape(-1).tolist() == pytest.approx([n for _, n in pairs])
    for column in programmed.columns:
        assert column.min() >= g_min and column.max() <= g_max
    # the largest |w| sits at G_max on its side, its partner and every zero side at G_min
    top = weights.abs().argmax()
    side = programmed.positive if weights.reshape(-1)[top] > 0 else programmed.negative
    other = programmed.negative if weights.reshape(-1)[top] > 0 else programmed.positive
    assert side.reshape(-1)[top] == pytest.approx(g_max)
    assert other.reshape(-1)[top] == pytest.approx(g_min)
    back = weights_from_pairs(pairs, g_min, g_max, float(weights.abs().max()))
    assert mapping.to_weights(programmed).reshape(-1).tolist() == pytest.approx(back, abs=1e-12)


def test_explicit_scale_and_zero_tensor():
    mapping = ConductanceMapping(scheme="differential")
    weights = torch.tensor([0.5, -0.25])
    programmed = mapping.to_conductance(weights, scale=2.0)
    assert programmed.positive.tolist() == pytest.approx([200.0, 100.0])
    assert programmed.negative.tolist() == pytest.approx([100.0, 150.0])
    assert torch.equal(mapping.to_weights(programmed), weights)
    zeros = mapping.to_conductance(torch.zeros(3))
    assert torch.equal(zeros.positive, torch.full((3,), 100.0, dtype=torch.float64))
    assert torch.equal(mapping.to_weights(zeros), torch.zeros(3))
    with pytest.raises(ValueError, match="scale"):
        mapping.to_conductance(weights, scale=0.1)


def test_invalid_window_is_rejected():
    with pytest.raises(ValidationError, match="r_lrs_ohm"):
        ConductanceMapping(r_lrs_ohm=2e4, r_hrs_ohm=1e4)

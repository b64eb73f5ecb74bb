"""ConductanceMapping with the window given directly (g_min_us, g_max_us), e.g. PCM's G_min = 0:
the same formulas as from r_lrs/r_hrs (Drolet et al. 2023), and the resistance form unchanged."""

from __future__ import annotations

import pytest
import torch
from pydantic import ValidationError

from noiseproof.noise.mapping import ConductanceMapping
from reference.crossbar_reference import differential_pair


def test_a_direct_window_equals_the_same_window_from_resistances():
    weights = torch.randn(5, 7, generator=torch.Generator().manual_seed(0))
    direct = ConductanceMapping(g_min_us=100.0, g_max_us=500.0, scheme="differential")
    resistive = ConductanceMapping(scheme="differential")
    assert (direct.g_min, direct.g_max) == (resistive.g_min, resistive.g_max)
    a, b = direct.to_conductance(weights), resistive.to_conductance(weights)
    assert torch.equal(a.positive, b.positive) and torch.equal(a.negative, b.negative)


@pytest.mark.parametrize("scheme", ["auto", "differential"])
def test_a_window_from_zero_round_trips_and_matches_the_reference(scheme):
    weights = torch.randn(6, 3, generator=torch.Generator().manual_seed(1))
    mapping = ConductanceMapping(g_min_us=0.0, g_max_us=25.0, scheme=scheme)
    programmed = mapping.to_conductance(weights)
    assert torch.equal(mapping.to_weights(programmed), weights)
    if scheme == "differential":
        pairs = differential_pair(weights.reshape(-1).tolist(), 0.0, 25.0)
        assert programmed.positive.reshape(-1).tolist() == pytest.approx([p for p, _ in pairs])
        assert programmed.negative.reshape(-1).tolist() == pytest.approx([n for _, n in pairs])


@pytest.mark.parametrize(
    ("values", "needle"),
    [
        ({"g_min_us": 1.0}, "both g_min_us and g_max_us"),
        ({"g_max_us": 1.0}, "both g_min_us and g_max_us"),
        ({"g_min_us": 5.0, "g_max_us": 5.0}, "must be below g_max_us"),
        ({"g_min_us": -1.0, "g_max_us": 5.0}, "g_min_us"),
        ({"g_min_us": 0.0, "g_max_us": float("inf")}, "g_max_us"),
        ({"g_min_us": 0.0, "g_max_us": 5.0, "r_lrs_ohm": 1e3}, "g_min_us/g_max_us or r_lrs"),
    ],
)
def test_bad_windows_are_refused(values, needle):
    with pytest.raises(ValidationError, match=needle.replace("/", ".")):
        ConductanceMapping(**values)

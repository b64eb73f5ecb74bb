"""`measured` with drift_compensation none | global | per_column (pcm's semantics), against the
reference in tests/reference/analog_ranges_reference.py."""

from __future__ import annotations

import pytest
import torch

from noiseproof.errors import NoiseproofError
from noiseproof.noise import create_noise
from reference.analog_ranges_reference import compensated
from reference.measured_reference import DEVICE_FIXTURE

DAY = 86400.0


def _measured(**fields):
    return create_noise({"name": "measured", "file": str(DEVICE_FIXTURE), **fields})


@pytest.mark.parametrize("mode", ["global", "per_column"])
def test_compensation_scales_the_drifted_read_by_the_programmed_readout(mode):
    weights = {"w": torch.randn(6, 9, generator=torch.Generator().manual_seed(0)).double()}

    def read(**fields):
        return _measured(**fields).sample(weights, torch.Generator().manual_seed(7))["w"]

    then = read()  # the same draws read as programmed (no drift)
    now = read(t_inference=DAY)
    got = read(t_inference=DAY, drift_compensation=mode)
    want = compensated(now.tolist(), then.tolist(), per_column=mode == "per_column")
    torch.testing.assert_close(got, torch.tensor(want, dtype=got.dtype), rtol=1e-9, atol=1e-12)
    assert not torch.allclose(now, got)  # a day of drift was there to undo
    rows = got.abs().sum(1) if mode == "per_column" else got.abs().sum()
    expected = then.abs().sum(1) if mode == "per_column" else then.abs().sum()
    torch.testing.assert_close(rows, expected)


def test_compensation_needs_a_read_time_and_keeps_none_as_it_was():
    with pytest.raises(NoiseproofError, match="drift_compensation needs t_inference"):
        _measured(drift_compensation="global")
    weights = {"w": torch.randn(3, 4, generator=torch.Generator().manual_seed(1))}
    plain = _measured(t_inference=DAY).sample(weights, torch.Generator().manual_seed(2))
    none = _measured(t_inference=DAY, drift_compensation="none")
    assert torch.equal(plain["w"], none.sample(weights, torch.Generator().manual_seed(2))["w"])

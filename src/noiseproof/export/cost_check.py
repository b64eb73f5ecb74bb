"""The cost estimate against a published chip: IBM's 64-core PCM chip (Le Gallo et al. 2023).

M. Le Gallo et al., "A 64-core mixed-signal in-memory compute chip based on phase-change memory
for deep neural network inference", Nature Electronics 6:680-693, 2023 (arXiv:2212.02872): 64
cores of 256 x 256 unit cells in 14 nm CMOS, 8-bit input/output MVMs reaching 63.1 TOPS at
9.76 TOPS/W in the one-phase read mode (16.1 TOPS at 2.48 TOPS/W in the four-phase mode). Its
core is HERMES (Khaddam-Aljameh et al., IEEE JSSC 57(4), 2022): 256 CCO-based ADCs, one per
column, a 1 GHz clock, 10.5 TOPS/W measured on one core.

The estimate is set to the chip's configuration (`LE_GALLO_2023`) and run on one MVM of a full
tile whose weights are drawn from N(0, 1) (trained weights are near normal); its MVM efficiency
(`mvm_tops_per_w`: 2 x 256 x 256 operations per joule of ADCs, DACs and array) is compared with
the published 9.76 TOPS/W. The ADC and DAC energies are the estimate's own (the survey's median
SAR ADC and ISAAC's DACs, noiseproof.export.cost), not the chip's: the check asks whether the
first-order model lands near a real chip, not whether it can be fitted to one.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from noiseproof.export.cost import CostConfig, estimate_model

CORES = 64
"""Cores of the chip (Le Gallo et al. 2023, abstract)."""

PUBLISHED_TOPS = 63.1
"""Peak throughput of 8-bit MVMs in the one-phase mode, all cores (abstract)."""

PUBLISHED_TOPS_PER_W = 9.76
"""Energy efficiency of those MVMs (abstract)."""

MVM_TIME_S = 2 * 256 * 256 * CORES / (PUBLISHED_TOPS * 1e12)
"""One MVM per core, derived from the published throughput: 2 x 256^2 operations on each of
64 cores every 133 ns. Used as the integration time (an upper bound: it holds the conversion,
which the chip's CCO ADCs make while the input pulses last)."""

FACTOR = 4.0
"""The estimate lands within this factor of the published efficiency (tests/cli/test_cost.py)."""

LE_GALLO_2023: dict[str, Any] = {
    "tile": "256x256",  # 256 x 256 unit cells per core (abstract)
    "dac_bits": 8,  # 8-bit inputs (abstract)
    "adc_bits": 8,  # 8-bit outputs (abstract)
    "mapping": "pcm",  # IBM's PCM device model (aihwkit, Nandakumar et al. 2019): 0-25 uS
    "bias": "digital",  # the MVM alone, as the efficiency is published
    "read_voltage_v": 0.2,  # assumed, a common PCM read voltage: the chip's own not found
    "integration_time_s": MVM_TIME_S,
    "columns_per_adc": 1,  # 256 ADCs per 256-column core (Khaddam-Aljameh et al. 2022)
    "digital_clock_hz": 1e9,  # 1 GHz main clock (Khaddam-Aljameh et al. 2022)
}
"""The chip's configuration as CostConfig keys; every other constant is the estimate's default."""


def check_le_gallo_2023(seed: int = 0) -> dict[str, Any]:
    """The estimate of one MVM of a full 256 x 256 tile (weights N(0, 1) from `seed`) with the
    chip's configuration: {'estimated_tops_per_w', 'published_tops_per_w', 'ratio',
    'energy_j' (by part), 'estimated_tops' (all cores, one MVM per step), 'published_tops'}."""
    generator = torch.Generator().manual_seed(seed)
    layer = nn.Linear(256, 256, bias=False)
    with torch.no_grad():
        layer.weight.copy_(torch.randn(256, 256, generator=generator))
    result = estimate_model(layer, (256,), CostConfig(**LE_GALLO_2023))
    step = result["latency_s"]["step"]
    return {
        "estimated_tops_per_w": result["mvm_tops_per_w"],
        "published_tops_per_w": PUBLISHED_TOPS_PER_W,
        "ratio": result["mvm_tops_per_w"] / PUBLISHED_TOPS_PER_W,
        "energy_j": result["energy_j"],
        "mean_pair_conductance_us": result["mean_pair_conductance_us"],
        "estimated_tops": 2 * 256 * 256 * CORES / step / 1e12,
        "published_tops": PUBLISHED_TOPS,
    }

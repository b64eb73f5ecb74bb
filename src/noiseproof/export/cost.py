"""Energy and latency of one inference on analog crossbar tiles: a first-order estimate.

From the census of one inference (noiseproof.export.census: tiles, MVMs, DAC and ADC
conversions, analog MACs, the remaining digital FLOPs and additions, the devices read):

    E_adc     = ADC conversions x FoM_W x 2^adc_bits          (Walden figure of merit)
    E_dac     = DAC conversions x E_dac_bit x dac_bits
    E_array   = V_read^2 x t_int x sum of G over the devices read   (every driven row held at
                V_read for the whole integration time: an upper bound for pulse-width inputs)
    E_digital = digital FLOPs / 2 x (E_add + E_mult) + digital additions x E_accumulate
    latency   = MVM steps x (t_int + min(columns per ADC, tile columns) x slices / f_ADC)
                + (digital FLOPs / 2 + digital additions) / (f_clock x lanes)

MVM steps: each input vector of each layer (each group of a grouped convolution) is one step;
all the tiles of one activation work in parallel (every tile has its own converters) and
layers run one after the other (no pipelining between layers).

Every constant is a field of `CostConfig` (the `cost:` section of a config, `--set` of
`noiseproof cost`), with its source; docs/cost.md has the table and what the model ignores.
The default read voltage, integration time, columns per ADC and clock are NeuroSim's defaults
(DNN_NeuroSim_V1.3, Inference_pytorch/NeuroSIM/Param.cpp: readVoltage 0.5 V, readPulseWidth
10 ns, numColMuxed 8, clkFreq 1 GHz; Peng et al., IEDM 2019).
"""

from __future__ import annotations

import math
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator
from torch import nn

from noiseproof.chip import ChipSelection
from noiseproof.errors import NoiseproofError
from noiseproof.export.census import Census, census
from noiseproof.export.layout import crossbar_arrays
from noiseproof.export.tiles import conductance_window, parse_tile
from noiseproof.noise import noise_models
from noiseproof.noise.base import NoiseModel

ADC_FOM_J = 30.5e-15
"""Walden figure of merit FoM_W = P / (2^ENOB f_s) of a typical SAR ADC: the median of the
40 SAR designs with a Nyquist rate of 10 MS/s to 1 GS/s in B. Murmann, "ADC Performance
Survey 1997-2025" (github.com/bmurmann/ADC-survey, ADCsurvey_rev20250609.xlsx, sheets ISSCC
and VLSI, column FOMW_hf): 30.5 fJ/conversion-step (quartiles 17.7 and 84.3, best 2.2)."""

ADC_SAMPLE_RATE_HZ = 50e6
"""Conversion rate of one ADC: the median Nyquist rate (fsnyq) of the same 40 SAR designs."""

DAC_ENERGY_PER_BIT_J = 0.39e-12
"""One 1-bit input conversion: ISAAC's 8 x 128 1-bit DACs draw 4 mW in all (Shafiee et al.,
ISCA 2016, Table 2; 0.0039 mW per DAC in the PUMA simulator's constants.py) over its 100 ns
crossbar cycle: 4 mW / 1024 x 100 ns. A b-bit input costs b of them (ISAAC's bit-serial
inputs)."""

HOROWITZ_2014_J = {
    "int8_add": 0.03e-12,
    "int32_add": 0.1e-12,
    "int8_mult": 0.2e-12,
    "int32_mult": 3.1e-12,
    "fp16_add": 0.4e-12,
    "fp16_mult": 1.1e-12,
    "fp32_add": 0.9e-12,
    "fp32_mult": 3.7e-12,
}
"""Energy per operation at 45 nm, 0.9 V, in J: M. Horowitz, "Computing's energy problem (and
what we can do about it)", ISSCC 2014, pp. 10-14 (the table of Fig. 1.1.9)."""


class CostConfig(BaseModel):
    """The `cost:` section: the chip the estimate assumes, and every constant of its model.

    tile, dac_bits, adc_bits, mapping, weight_slices, bias describe the chip; the other fields
    are the constants of the energy and latency model (module docstring), each with its source.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    tile: str = Field(
        ...,
        description="crossbar tile ROWSxCOLS in weight positions, e.g. 256x256 (rows are inputs)",
    )
    dac_bits: int = Field(..., ge=1, le=24, strict=True, description="input DAC bits")
    adc_bits: int = Field(..., ge=1, le=24, strict=True, description="output ADC bits")
    mapping: str | dict[str, Any] = Field(
        "tio2_crossbar",
        description="noise model whose conductance window the weights are mapped onto "
        "(tio2_crossbar, pcm, measured, or a spec): the conductances the array energy reads",
    )
    weight_slices: int = Field(
        1, ge=1, le=64, strict=True, description="device pairs per weight, each read by the ADC"
    )
    bias: Literal["auto", "row", "digital"] = Field(
        "auto",
        description="a layer's bias as its array's last row or digital; auto: digital when "
        "the noise model keeps biases digital (pcm), else row (as noiseproof export)",
    )
    read_voltage_v: float = Field(
        0.5, gt=0, allow_inf_nan=False, description="V_read in volts (NeuroSim's readVoltage)"
    )
    integration_time_s: float = Field(
        10e-9,
        gt=0,
        allow_inf_nan=False,
        description="t_int, seconds a row is driven per MVM (NeuroSim's readPulseWidth)",
    )
    adc_fom_j: float = Field(
        ADC_FOM_J,
        gt=0,
        allow_inf_nan=False,
        description="Walden FoM in J per conversion step (Murmann's survey: median SAR, "
        "10 MS/s-1 GS/s)",
    )
    adc_sample_rate_hz: float = Field(
        ADC_SAMPLE_RATE_HZ,
        gt=0,
        allow_inf_nan=False,
        description="conversions per second of one ADC (the same survey designs' median)",
    )
    columns_per_adc: int = Field(
        8, ge=1, strict=True, description="columns sharing one ADC (NeuroSim's numColMuxed)"
    )
    dac_energy_per_bit_j: float = Field(
        DAC_ENERGY_PER_BIT_J,
        ge=0,
        allow_inf_nan=False,
        description="J per 1-bit input conversion (ISAAC: 4 mW for 1024 DACs, 100 ns cycle)",
    )
    digital_add_j: float = Field(
        HOROWITZ_2014_J["fp16_add"],
        ge=0,
        allow_inf_nan=False,
        description="J per digital add of the rest of the model (Horowitz 2014: 16-bit FP)",
    )
    digital_mult_j: float = Field(
        HOROWITZ_2014_J["fp16_mult"],
        ge=0,
        allow_inf_nan=False,
        description="J per digital multiply of the rest of the model (Horowitz 2014: 16-bit FP)",
    )
    accumulate_add_j: float = Field(
        HOROWITZ_2014_J["int32_add"],
        ge=0,
        allow_inf_nan=False,
        description="J per addition of partial sums, slices and a digital bias (Horowitz "
        "2014: 32-bit integer)",
    )
    digital_clock_hz: float = Field(
        1e9, gt=0, allow_inf_nan=False, description="digital clock (NeuroSim's clkFreq)"
    )
    digital_lanes: int | None = Field(
        None,
        ge=1,
        strict=True,
        description="digital operations per clock cycle; null: one per tile column",
    )

    @field_validator("tile", mode="before")
    @classmethod
    def _tile(cls, value: Any) -> str:
        if isinstance(value, list | tuple) and len(value) == 2:  # [rows, cols]
            value = "x".join(str(v) for v in value)
        if not isinstance(value, str):  # YAML reads 0x3 as the hexadecimal number 3
            raise ValueError(f"tile must be ROWSxCOLS (e.g. 256x256), got {value!r}")
        parse_tile(value)  # ValueError: one line naming the form
        return value.strip()

    @field_validator("mapping", mode="before")
    @classmethod
    def _mapping(cls, value: Any) -> Any:
        try:
            noise = noise_models.create(value)
            conductance_window(noise)
        except NoiseproofError as error:
            raise ValueError(str(error)) from None
        return noise.spec()

    @property
    def tile_shape(self) -> tuple[int, int]:
        """(rows, cols) of one tile."""
        return parse_tile(self.tile)

    def noise(self) -> NoiseModel:
        """The mapping's noise model."""
        return noise_models.create(self.mapping)

    def bias_mode(self) -> Literal["row", "digital"]:
        """'row' or 'digital': `bias`, with auto resolved as `noiseproof export` does."""
        if self.bias != "auto":
            return self.bias
        return "digital" if getattr(self.noise(), "bias", None) == "digital" else "row"

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON/YAML values that CostConfig(**...) takes back."""
        return self.model_dump(mode="json")


def estimate_model(
    model: nn.Module,
    input_shape: Any,
    config: CostConfig,
    selection: ChipSelection | None = None,
) -> dict[str, Any]:
    """The estimate (`estimate`) of one inference of `model` on an example of `input_shape`
    with the chip and constants of `config`, for the tensors of `selection` (default: the
    standard chip selection)."""
    window = conductance_window(config.noise())
    bias = config.bias_mode()
    arrays = crossbar_arrays(model, selection, bias)
    counted = census(
        model,
        input_shape,
        config.tile_shape,
        window,
        bias=bias,
        slices=config.weight_slices,
        arrays=arrays,
    )
    return estimate(counted, config)


def energies(counted: Census, config: CostConfig) -> dict[str, float]:
    """Joules of one inference by part: adc, dac, array, accumulate, digital and total."""
    parts = {
        "adc": counted.total("adc") * config.adc_fom_j * 2.0**config.adc_bits,
        "dac": counted.total("dac") * config.dac_energy_per_bit_j * config.dac_bits,
        "array": config.read_voltage_v**2
        * config.integration_time_s
        * counted.total("conductance_us")
        * 1e-6,
        "accumulate": counted.total("adds") * config.accumulate_add_j,
        "digital": counted.digital_flops / 2 * (config.digital_add_j + config.digital_mult_j),
    }
    return {**parts, "total": sum(parts.values())}


def latencies(counted: Census, config: CostConfig) -> dict[str, float]:
    """Seconds of one inference: analog (MVM steps), digital, total (module docstring)."""
    rows, cols = counted.tile
    steps = sum(a.vectors * a.groups for a in counted.arrays if a.mvms)
    conversions = min(config.columns_per_adc, cols) * counted.slices
    step = config.integration_time_s + conversions / config.adc_sample_rate_hz
    lanes = config.digital_lanes or cols
    operations = counted.digital_flops / 2 + counted.total("adds")
    analog, digital = steps * step, operations / (config.digital_clock_hz * lanes)
    return {"mvm_steps": steps, "step": step, "analog": analog, "digital": digital,
            "total": analog + digital}  # fmt: skip


def estimate(counted: Census, config: CostConfig) -> dict[str, Any]:
    """The estimate as plain JSON values: per layer and in total, the counts of the census,
    the energy by part (J), the latency (s) and the efficiency (TOPS/W: the tiles' and the
    digital FLOPs per joule; `mvm_tops_per_w`: the tiles' FLOPs per joule of converters,
    array and accumulation, the figure chips publish for their MVMs)."""
    energy, latency = energies(counted, config), latencies(counted, config)
    mvm_energy = energy["adc"] + energy["dac"] + energy["array"] + energy["accumulate"]
    positions = sum(a.rows * a.cols for a in counted.arrays)
    layers = []
    for a in counted.arrays:
        single = Census((a,), 0, counted.tile, counted.slices, counted.window)
        layers.append(
            {
                "name": a.name,
                "module": a.module,
                "used_by": list(a.users),
                "array": [a.rows, a.cols],
                "tiles_grid": list(a.grid),
                "tiles": a.tiles,
                "bias": a.bias,
                "calls": a.calls,
                "vectors": a.vectors,
                "mvms": a.mvms,
                "dac_conversions": a.dac,
                "adc_conversions": a.adc,
                "analog_macs": a.macs,
                "digital_adds": a.adds,
                "energy_j": energies(single, config)["total"],
            }
        )
    totals = {
        "tiles": int(counted.total("tiles")),
        "mvms": int(counted.total("mvms")),
        "mvm_steps": latency["mvm_steps"],
        "dac_conversions": int(counted.total("dac")),
        "adc_conversions": int(counted.total("adc")),
        "analog_macs": int(counted.total("macs")),
        "flops": counted.flops,
        "digital_flops": counted.digital_flops,
        "digital_adds": int(counted.total("adds")),
    }
    return {
        "tile": list(counted.tile),
        "weight_slices": counted.slices,
        "window_us": list(counted.window),
        "mean_pair_conductance_us": (
            counted.total("pair_conductance_us") / positions if positions else 0.0
        ),
        "layers": layers,
        "totals": totals,
        "energy_j": energy,
        "latency_s": {k: v for k, v in latency.items() if k != "mvm_steps"},
        "tops_per_w": _tops(counted.analog_flops + counted.digital_flops, energy["total"]),
        "mvm_tops_per_w": _tops(counted.analog_flops, mvm_energy),
        "off_chip": len(counted.off_chip),
        "settings": config.to_dict(),
    }


def _tops(flops: float, joules: float) -> float | None:
    """FLOPs per joule in units of 10^12 (TOPS/W); None without energy."""
    return flops / joules / 1e12 if joules > 0 and math.isfinite(joules) else None

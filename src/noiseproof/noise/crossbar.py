"""Passive TiO2 ReRAM crossbar (Drolet et al. 2023, arXiv 2305.18495): one programming of a chip.

Each on-chip tensor is mapped onto conductances (`ConductanceMapping`: differential pairs, G in
[1/R_HRS, 1/R_LRS] = [100, 500] uS), every device is programmed with the published
non-idealities, and the effective weights are read back. Effects, in the order applied to a
device of target conductance G (uS), each with its own switch:

1. tuning offset:      G += G * o / 100,  o ~ N(-0.589, 0.339)      (percent; published)
2. programming noise:  G += sigma(G) * N(0,1),  sigma(G) = (a G + b) / 100 * G,
                       a = -6.24e-4 /uS, b = 0.691 (about 0.6% at 100 uS, 0.4% at 500 uS; published)
3. program disturb:    G += dG, where n is the number of cells of the same array programmed
                       after this one (row-major over the crossbar, inputs on rows).
                       `disturb_model="measured"` (default): dG ~ N(mu_k, sd_k), the mean and
                       std of the authors' measured disturb samples (`MEASURED_DISTURB_US`)
                       for key k = min(n + 1, 43), none for n = 0: the authors' code gives the
                       cell with n >= 1 cells after it the samples labelled n + 1 and none to
                       the last cell. sd_k is 8.2-13.9 uS for the keys 2-16 a 16-cell array
                       uses. `disturb_model="gaussian"`: dG ~ N(m f(n), s f(n)),
                       f(n) = 1 - exp(-n / n0), m = 1 uS, s = 2 uS, n0 = 8 (our earlier
                       assumption, kept for the ablation). `disturb_table` loads a table
                       instead (CSV columns cells_after, delta_g_us; dG drawn uniformly among
                       the rows with the nearest cells_after).
4. clip to [G_min, G_max]: a working device cannot leave its HRS..LRS window (our choice; the
                       authors' code does not clip, set clip=false to match it).
5. stuck devices:      0.5% stuck at LRS, G ~ N(573, 99) uS (clamped at 0), and 0.5% stuck at
                       HRS, G ~ U[10, 100] uS, independently for every device (published).
6. line resistance:    first-order IR drop (our model, off by default; sneak paths and V/2 vs
                       V/3 biasing are named in the paper without a model). The cell at crossbar
                       row r, column c of an array with R rows is read through (c + 1) + (R - r)
                       wire segments of `wire_ohm` each: G_eff = G / (1 + G * R_series). Sneak
                       currents do not flow at inference (all rows driven, columns at virtual
                       ground); their effect during programming is the disturb of step 3.

The sweep level s (field `strength`) scales every effect: offset o -> s * o, noise and disturb
by s, stuck fractions by s, wire resistance by s. Level 1 is the published device, level 0 is
ideal (the mapping round-trips the weights exactly). Random draws do not depend on the level, so one
generator state gives the same chip, only worse, at a higher level.

Biases: each tensor is its own array with its own max|W| scale by default (`bias_scale="own"`,
as the authors' code does); "layer" maps a layer's weight and bias with one shared scale (a
bias with one value per output of its weight matrix, noiseproof.arrays).
One-element tensors (the 2-8-1 network's output bias) stay ideal by default, as in the
authors' code (`single_element="map"` programs them too).
"""

from __future__ import annotations

import csv
import functools
import math
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar, Literal, Self

import torch
from pydantic import Field, PrivateAttr, model_validator
from torch import Tensor

from noiseproof.arrays import array_groups
from noiseproof.chip import Params
from noiseproof.noise.base import NoiseModel, noise_models
from noiseproof.noise.mapping import ConductanceMapping, Conductances

# Program disturb measured by Drolet et al. 2023 (arXiv 2305.18495): (mean, std) in uS of the
# conductance change per key k = 1..43 (each key has >= 50 samples; 17,478 in all), computed
# from drift_dicts/delta_dicts.pkl of github.com/3it-inpaqt/Hardware-Aware-Article, commit
# 3fd44671408819999de8708d27ce08899ae3265e (values x 1e6, sample std). Only these numbers are
# used here, not the file.
MEASURED_DISTURB_US: tuple[tuple[float, float], ...] = (
    (-0.37, 6.68), (-0.91, 8.22), (-1.23, 8.91), (-1.73, 10.03), (-2.17, 10.48),
    (-2.47, 10.66), (-2.80, 11.38), (-3.35, 11.67), (-3.82, 12.28), (-4.10, 12.09),
    (-4.63, 12.66), (-5.33, 12.98), (-5.60, 13.07), (-5.90, 13.31), (-5.68, 13.56),
    (-5.48, 13.92), (-5.15, 13.93), (-4.63, 13.98), (-4.49, 14.07), (-5.07, 14.83),
    (-5.16, 15.13), (-5.52, 15.82), (-6.04, 16.00), (-6.40, 16.82), (-7.25, 17.10),
    (-7.32, 17.59), (-7.85, 17.77), (-7.40, 18.03), (-7.94, 18.07), (-7.70, 18.51),
    (-7.98, 18.93), (-7.66, 19.44), (-7.93, 18.46), (-7.36, 18.96), (-6.93, 19.00),
    (-6.97, 18.68), (-6.78, 19.21), (-7.10, 18.47), (-7.66, 18.84), (-7.58, 18.63),
    (-7.39, 18.52), (-5.50, 19.03), (-5.99, 18.70),
)  # fmt: skip


@dataclass(frozen=True)
class DisturbTable:
    """Measured program-disturb samples grouped by the number of cells programmed afterwards.

    keys: sorted distinct cells_after values; starts/counts: where each key's samples sit in
    `values` (delta G in uS, float64, grouped by key).
    """

    keys: Tensor
    starts: Tensor
    counts: Tensor
    values: Tensor

    def sample(self, cells_after: Tensor, generator: torch.Generator) -> Tensor:
        """One dG per cell: a uniform pick among the samples of the nearest cells_after key."""
        table = self.on(generator.device)
        n = cells_after.to(generator.device, torch.float64).reshape(-1)
        keys = table.keys.to(torch.float64)
        right = torch.searchsorted(keys, n).clamp(max=len(keys) - 1)
        left = (right - 1).clamp(min=0)
        nearest = torch.where((n - keys[left]).abs() <= (keys[right] - n).abs(), left, right)
        u = torch.rand(n.shape, generator=generator, dtype=torch.float64, device=generator.device)
        pick = (u * table.counts[nearest]).long().clamp(max=table.counts[nearest] - 1)
        return table.values[table.starts[nearest] + pick].reshape(cells_after.shape)

    def on(self, device: torch.device) -> DisturbTable:
        """This table with its tensors on `device` (itself when already there)."""
        if self.values.device == device:
            return self
        return _table_on(self, str(device))


@functools.lru_cache(maxsize=16)
def _table_on(table: DisturbTable, device: str) -> DisturbTable:
    """`table` moved to `device` once (cached by the table's identity), not once per transfer."""
    tensors = (table.keys, table.starts, table.counts, table.values)
    return DisturbTable(*(t.to(device) for t in tensors))


@functools.lru_cache(maxsize=16)
def _read_table(path: str, mtime: float) -> DisturbTable:
    rows: dict[int, list[float]] = {}
    with open(path, newline="") as handle:
        reader = csv.DictReader(handle)
        missing = {"cells_after", "delta_g_us"} - set(reader.fieldnames or ())
        if missing:
            raise ValueError(
                f"disturb table {path} lacks column(s) {sorted(missing)} "
                "(expected cells_after,delta_g_us)"
            )
        for line, row in enumerate(reader, start=2):
            try:
                n, dg = int(row["cells_after"]), float(row["delta_g_us"])
            except (TypeError, ValueError):
                raise ValueError(f"disturb table {path}, line {line}: not numbers") from None
            if n < 0 or not math.isfinite(dg):
                raise ValueError(
                    f"disturb table {path}, line {line}: need cells_after >= 0, finite delta_g_us"
                )
            rows.setdefault(n, []).append(dg)
    if not rows:
        raise ValueError(f"disturb table {path} has no rows")
    keys = sorted(rows)
    counts = torch.tensor([len(rows[k]) for k in keys], dtype=torch.int64)
    starts = torch.cumsum(counts, 0) - counts
    values = torch.tensor([v for k in keys for v in rows[k]], dtype=torch.float64)
    return DisturbTable(torch.tensor(keys, dtype=torch.int64), starts, counts, values)


def load_disturb_table(path: str | Path) -> DisturbTable:
    """Read a CSV with columns cells_after (int >= 0) and delta_g_us (uS), cached per file."""
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"disturb table not found: {path}")
    return _read_table(str(path.resolve()), path.stat().st_mtime)


def crossbar_positions(
    shape: torch.Size, device: torch.device | None = None
) -> tuple[Tensor, Tensor, int, int]:
    """(row, col, n_rows, n_cols) of every element of a tensor laid out on one crossbar array.

    A [out, *rest] tensor sits transposed: input k = flattened rest index on row k, output o on
    column o (y = x G). A 1-D tensor (a bias) is one row. row and col are shaped like the tensor,
    made on `device` (None: the CPU).
    """
    numel = math.prod(shape)
    if len(shape) >= 2:
        n_cols, n_rows = shape[0], numel // max(shape[0], 1)
        col = torch.arange(n_cols, device=device).view(-1, 1).expand(n_cols, n_rows)
        row = torch.arange(n_rows, device=device).view(1, -1).expand(n_cols, n_rows)
        return row.reshape(shape), col.reshape(shape), n_rows, n_cols
    col = torch.arange(numel, device=device).reshape(shape)
    return torch.zeros_like(col), col, 1, max(numel, 1)


def cells_after(shape: torch.Size, device: torch.device | None = None) -> Tensor:
    """How many cells of the array are programmed after each element (row-major programming)."""
    row, col, _, n_cols = crossbar_positions(shape, device)
    order = row * n_cols + col
    return math.prod(shape) - 1 - order


def wire_segments(shape: torch.Size, device: torch.device | None = None) -> Tensor:
    """Wire segments between drivers and sense amplifier per element: (col + 1) + (n_rows - row)."""
    row, col, n_rows, _ = crossbar_positions(shape, device)
    return (col + 1) + (n_rows - row)


@dataclass(frozen=True)
class ProgrammedTensor:
    """One tensor after programming: the ideal and the actual conductances, and stuck devices.

    stuck_columns: one bool mask per device column (same order as `Conductances.columns`).
    """

    target: Conductances
    actual: Conductances
    stuck_columns: tuple[Tensor, ...]

    @property
    def stuck(self) -> Tensor:
        """Weights with at least one stuck device in their pair."""
        mask = self.stuck_columns[0]
        for column in self.stuck_columns[1:]:
            mask = mask | column
        return mask


@noise_models.register("tio2_crossbar")
class TiO2Crossbar(NoiseModel):
    """Passive TiO2 ReRAM crossbar transfer with published device statistics (Drolet 2023).

    Differential conductance pairs in [1/R_HRS, 1/R_LRS]; tuning offset, conductance-dependent
    programming noise, program disturb, stuck-at-LRS/HRS devices and optional line resistance,
    each with its own switch; the sweep level `strength` scales all of them (1 = published
    device, 0 = ideal).
    """

    level_field: ClassVar[str] = "strength"
    strength: float = Field(
        1.0, ge=0, allow_inf_nan=False, description="sweep level: scales every effect"
    )
    r_lrs_ohm: float = Field(2e3, gt=0, allow_inf_nan=False, description="LRS resistance (Ohm)")
    r_hrs_ohm: float = Field(1e4, gt=0, allow_inf_nan=False, description="HRS resistance (Ohm)")
    scheme: Literal["auto", "differential"] = Field(
        "auto", description="auto: one column when a tensor's weights share a sign"
    )
    bias_scale: Literal["own", "layer"] = Field(
        "own", description="bias mapped with its own max|b| (authors) or the layer's scale"
    )
    single_element: Literal["ideal", "map"] = Field(
        "ideal", description="one-element tensors left ideal (authors' code) or programmed"
    )
    clip: bool = Field(True, description="clip working devices to [G_min, G_max] (our choice)")
    offset: bool = Field(True, description="tuning offset G += G o / 100")
    offset_mean_pct: float = Field(-0.589, allow_inf_nan=False, description="mean of o (%)")
    offset_std_pct: float = Field(0.339, ge=0, allow_inf_nan=False, description="std of o (%)")
    programming_noise: bool = Field(True, description="G += sigma(G) N(0,1)")
    noise_a_per_us: float = Field(
        -6.24e-4, allow_inf_nan=False, description="a in sigma(G) = (a G + b)/100 G (per uS)"
    )
    noise_b_pct: float = Field(0.691, allow_inf_nan=False, description="b in sigma(G) (%)")
    disturb: bool = Field(True, description="program disturb from cells programmed later")
    disturb_model: Literal["measured", "gaussian"] = Field(
        "measured", description="dG from the authors' measured statistics, or N(m f, s f)"
    )
    disturb_mean_us: float = Field(
        1.0, allow_inf_nan=False, description="gaussian: saturated mean dG (uS; our assumption)"
    )
    disturb_std_us: float = Field(
        2.0, ge=0, allow_inf_nan=False, description="gaussian: saturated std of dG (uS)"
    )
    disturb_cells: float = Field(
        8.0, gt=0, allow_inf_nan=False, description="gaussian: n0 of f(n) = 1 - exp(-n/n0)"
    )
    disturb_table: str | None = Field(
        None, description="CSV of measured dG (cells_after, delta_g_us) replacing the Gaussian"
    )
    stuck: bool = Field(True, description="stuck-at-LRS and stuck-at-HRS devices")
    stuck_lrs_fraction: float = Field(0.005, ge=0, le=1, description="devices stuck at LRS")
    stuck_hrs_fraction: float = Field(0.005, ge=0, le=1, description="devices stuck at HRS")
    stuck_lrs_mean_us: float = Field(573.0, allow_inf_nan=False, description="LRS-stuck G mean")
    stuck_lrs_std_us: float = Field(99.0, ge=0, allow_inf_nan=False, description="LRS-stuck G std")
    stuck_hrs_low_us: float = Field(10.0, ge=0, allow_inf_nan=False, description="HRS-stuck G min")
    stuck_hrs_high_us: float = Field(
        100.0, ge=0, allow_inf_nan=False, description="HRS-stuck G max"
    )
    line_resistance: bool = Field(False, description="first-order IR drop (our model)")
    wire_ohm: float = Field(1.0, ge=0, allow_inf_nan=False, description="Ohm per wire segment")

    _table: DisturbTable | None = PrivateAttr(None)

    @model_validator(mode="after")
    def _consistent(self) -> Self:
        if self.r_lrs_ohm >= self.r_hrs_ohm:
            raise ValueError(f"r_lrs_ohm ({self.r_lrs_ohm:g}) must be below r_hrs_ohm")
        if self.stuck_lrs_fraction + self.stuck_hrs_fraction > 1:
            raise ValueError("stuck_lrs_fraction + stuck_hrs_fraction must be <= 1")
        if self.stuck_hrs_low_us > self.stuck_hrs_high_us:
            raise ValueError("stuck_hrs_low_us must be <= stuck_hrs_high_us")
        if self.disturb_table is not None:
            self._table = load_disturb_table(self.disturb_table)
        return self

    @property
    def mapping(self) -> ConductanceMapping:
        """The weight <-> conductance map of this chip."""
        return ConductanceMapping(
            r_lrs_ohm=self.r_lrs_ohm, r_hrs_ohm=self.r_hrs_ohm, scheme=self.scheme
        )

    def conductance_window(self) -> tuple[float, float]:
        """(G_min, G_max) = (1/R_HRS, 1/R_LRS) in uS: the programmable window (Drolet 2023)."""
        return self.mapping.g_min, self.mapping.g_max

    def programming_sigma(self, g: Tensor) -> Tensor:
        """sigma(G) = (a G + b) / 100 * G in uS (level 1), floored at 0."""
        return ((self.noise_a_per_us * g + self.noise_b_pct) / 100 * g).clamp(min=0)

    def disturb_draw(self, shape: torch.Size, generator: torch.Generator) -> Tensor:
        """dG (uS, level 1) per element of one array (module docstring, step 3).

        From the table if given, else N(mu_k, sd_k) of the measured statistics (key
        k = min(n + 1, 43), 0 for n = 0) or N(m f(n), s f(n)). Made on the generator's device.
        """
        n = cells_after(shape, generator.device)
        if self._table is not None:
            return self._table.sample(n, generator)
        z = torch.randn(shape, generator=generator, dtype=torch.float64, device=generator.device)
        if self.disturb_model == "gaussian":
            f = 1 - torch.exp(-n.to(torch.float64) / self.disturb_cells)
            return f * (self.disturb_mean_us + self.disturb_std_us * z)
        stats = torch.tensor(MEASURED_DISTURB_US, dtype=torch.float64, device=generator.device)
        mean, std = stats[(n + 1).clamp(max=len(stats)) - 1].unbind(-1)
        return torch.where(n > 0, mean + std * z, torch.zeros_like(z))

    def program_column(self, g: Tensor, generator: torch.Generator) -> tuple[Tensor, Tensor]:
        """Program one device column of target conductances `g` (uS): (actual G, stuck mask)."""
        s, shape, device, drawn_on = self.level, g.shape, g.device, generator.device
        mapping = self.mapping

        def normal() -> Tensor:
            draw = torch.randn(shape, generator=generator, dtype=torch.float64, device=drawn_on)
            return draw.to(device)

        def uniform() -> Tensor:
            draw = torch.rand(shape, generator=generator, dtype=torch.float64, device=drawn_on)
            return draw.to(device)

        out = g
        if self.offset:
            out = out + g * (s * (self.offset_mean_pct + self.offset_std_pct * normal())) / 100
        if self.programming_noise:
            out = out + s * self.programming_sigma(g) * normal()
        if self.disturb:
            out = out + s * self.disturb_draw(shape, generator).to(device)
        if self.clip:
            out = out.clamp(mapping.g_min, mapping.g_max)
        stuck = torch.zeros(shape, dtype=torch.bool, device=device)
        if self.stuck:
            p_lrs, p_hrs = self.stuck_lrs_fraction, self.stuck_hrs_fraction
            hit, kind = uniform(), uniform()
            lrs_g = (self.stuck_lrs_mean_us + self.stuck_lrs_std_us * normal()).clamp(min=0)
            span = self.stuck_hrs_high_us - self.stuck_hrs_low_us
            hrs_g = self.stuck_hrs_low_us + span * uniform()
            if p_lrs + p_hrs > 0:
                stuck = hit < min(1.0, s * (p_lrs + p_hrs))
                is_lrs = kind < p_lrs / (p_lrs + p_hrs)
                out = torch.where(stuck, torch.where(is_lrs, lrs_g, hrs_g), out)
        if self.line_resistance and s * self.wire_ohm > 0:
            series_ohm = s * self.wire_ohm * wire_segments(shape, device).to(torch.float64)
            out = out / (1 + out * 1e-6 * series_ohm)
        return out, stuck

    def scales(self, params: Params) -> dict[str, Tensor | None]:
        """max|W| per tensor: its own (None), or with bias_scale=layer one scale shared by a
        layer's weight and its bias (the joined arrays of noiseproof.arrays)."""
        if self.bias_scale == "own":
            return dict.fromkeys(params)
        scales: dict[str, Tensor | None] = dict.fromkeys(params)
        for group in array_groups(params, "joined"):
            tops = [params[name].detach().abs().max().to(torch.float64) for name in group]
            shared = functools.reduce(torch.maximum, tops)
            scales.update(dict.fromkeys(group, shared))
        return scales

    @torch.no_grad()
    def program(self, params: Params, generator: torch.Generator) -> dict[str, ProgrammedTensor]:
        """Program every mappable tensor: target and actual conductances, stuck devices.

        One-element tensors are absent when `single_element="ideal"` (they stay ideal).
        """
        out = {}
        scales = self.scales(params)
        for name, tensor in params.items():
            if tensor.numel() == 0 or (tensor.numel() == 1 and self.single_element == "ideal"):
                continue
            target = self.mapping.to_conductance(tensor, scales[name])
            programmed = [self.program_column(g, generator) for g in target.columns]
            actual = target.with_columns(*(g for g, _ in programmed))
            out[name] = ProgrammedTensor(target, actual, tuple(m for _, m in programmed))
        return out

    @torch.no_grad()
    def sample_with_faults(
        self, params: Params, generator: torch.Generator
    ) -> tuple[Params, dict[str, Tensor]]:
        """One transfer (effective weights read back) and the mask of weights on stuck devices."""
        programmed = self.program(params, generator)
        weights, masks = {}, {}
        for name, tensor in params.items():
            chip = programmed.get(name)
            if chip is None:
                weights[name] = tensor.detach().clone()
                continue
            weights[name] = self.mapping.to_weights(chip.actual)
            masks[name] = chip.stuck
        return weights, masks

    def sample(self, params: Params, generator: torch.Generator) -> Params:
        """One transfer: the effective weights of one programmed chip."""
        return self.sample_with_faults(params, generator)[0]

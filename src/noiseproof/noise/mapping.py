"""Weight <-> conductance mapping for crossbar arrays (differential pairs, min-max scaled).

Drolet et al. 2023 (arXiv 2305.18495), after their public code: the conductance window comes
from the device's low- and high-resistance states, G in [1/R_HRS, 1/R_LRS] (100..500 uS for
2 kOhm / 10 kOhm). Each weight w is stored as a differential pair: w+ = max(w, 0) and
w- = max(-w, 0) are each min-max mapped from [0, max|W|] onto [G_min, G_max],

    G+ = G_min + (G_max - G_min) * w+ / max|W|,   G- = G_min + (G_max - G_min) * w- / max|W|,

and the effective weight read back is w = (G+ - G-) * max|W| / (G_max - G_min). When every
weight of a tensor shares one sign, one column suffices (scheme "auto"): G = G_min + (G_max -
G_min) * |w| / max|W| and w = sign * (G - G_min) * max|W| / (G_max - G_min), the G_min offset
being removed by a reference (our reading of the paper's one-column case).

A device whose window is known directly (a PCM device with G_min = 0, a measured device) gives
it as `g_min_us`, `g_max_us` instead of the resistances; the formulas are the same.

All arithmetic runs in float64 so that map-then-unmap returns the float32 weights bit for bit.
Any crossbar-style noise model can reuse this object: perturb the conductances it returns,
then call `to_weights`.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Literal, Self

import torch
from pydantic import BaseModel, ConfigDict, Field, model_validator
from torch import Tensor


@dataclass(frozen=True)
class Conductances:
    """One tensor programmed on a crossbar: conductances in microsiemens (float64).

    positive: G of the w+ column (or of the only column), shaped like the weights;
    negative: G of the w- column, or None in the one-column scheme;
    scale: max|W| used by the mapping (0-d tensor); sign: +1 or -1 in the one-column scheme
    (the sign every weight shares), 0 for differential pairs; dtype: the weights' dtype.
    """

    positive: Tensor
    negative: Tensor | None
    scale: Tensor
    sign: int
    dtype: torch.dtype

    @property
    def columns(self) -> tuple[Tensor, ...]:
        """The device columns: (G+, G-) for differential pairs, (G,) for one column."""
        return (self.positive,) if self.negative is None else (self.positive, self.negative)

    def with_columns(self, *columns: Tensor) -> Conductances:
        """The same mapping with new conductances for its columns (same order as `columns`)."""
        if len(columns) != len(self.columns):
            raise ValueError(f"expected {len(self.columns)} columns, got {len(columns)}")
        negative = columns[1] if len(columns) == 2 else None
        return replace(self, positive=columns[0], negative=negative)


class ConductanceMapping(BaseModel):
    """Weights <-> differential conductance pairs, min-max mapped (Drolet et al. 2023).

    G_min = 1/R_HRS and G_max = 1/R_LRS (in uS), or the window `g_min_us`, `g_max_us` given
    directly (then the resistances are not given); w+ and w- are each mapped from [0, max|W|]
    onto [G_min, G_max]; the inverse is w = (G+ - G-) * max|W| / (G_max - G_min).
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    r_lrs_ohm: float = Field(2e3, gt=0, allow_inf_nan=False, description="LRS resistance (Ohm)")
    r_hrs_ohm: float = Field(1e4, gt=0, allow_inf_nan=False, description="HRS resistance (Ohm)")
    scheme: Literal["auto", "differential"] = Field(
        "auto", description="auto: one column when all weights share a sign; else pairs"
    )
    g_min_us: float | None = Field(
        None, ge=0, allow_inf_nan=False, description="window low end (uS) instead of 1/r_hrs_ohm"
    )
    g_max_us: float | None = Field(
        None, gt=0, allow_inf_nan=False, description="window high end (uS) instead of 1/r_lrs_ohm"
    )

    @model_validator(mode="after")
    def _window(self) -> Self:
        direct = (self.g_min_us is not None, self.g_max_us is not None)
        if any(direct):
            if not all(direct):
                raise ValueError("give both g_min_us and g_max_us, or neither")
            if {"r_lrs_ohm", "r_hrs_ohm"} & self.model_fields_set:
                raise ValueError("give the window as g_min_us/g_max_us or r_lrs_ohm/r_hrs_ohm")
            assert self.g_min_us is not None and self.g_max_us is not None  # both: checked above
            if self.g_min_us >= self.g_max_us:
                raise ValueError(
                    f"g_min_us ({self.g_min_us:g}) must be below g_max_us ({self.g_max_us:g})"
                )
        elif self.r_lrs_ohm >= self.r_hrs_ohm:
            raise ValueError(
                f"r_lrs_ohm ({self.r_lrs_ohm:g}) must be below r_hrs_ohm ({self.r_hrs_ohm:g})"
            )
        return self

    @property
    def g_min(self) -> float:
        """Smallest programmable conductance in uS: g_min_us, else 1/R_HRS."""
        return 1e6 / self.r_hrs_ohm if self.g_min_us is None else self.g_min_us

    @property
    def g_max(self) -> float:
        """Largest programmable conductance in uS: g_max_us, else 1/R_LRS."""
        return 1e6 / self.r_lrs_ohm if self.g_max_us is None else self.g_max_us

    def to_conductance(self, weights: Tensor, scale: Tensor | float | None = None) -> Conductances:
        """Map `weights` onto conductances; `scale` overrides max|W| (e.g. a layer-wide scale).

        A scale of 0 (all-zero weights) maps every device to G_min and back to 0.
        """
        w = weights.detach().to(torch.float64)
        if scale is None:
            scale = (
                w.abs().max()
                if w.numel()
                else torch.zeros((), dtype=torch.float64, device=w.device)
            )
        scale = torch.as_tensor(scale, dtype=torch.float64, device=w.device)
        if bool((w.abs() > scale).any()):
            raise ValueError("scale must be at least max|W| of the tensor it maps")
        sign = 0
        if self.scheme == "auto":
            if bool((w >= 0).all()):
                sign = 1
            elif bool((w <= 0).all()):
                sign = -1
        if sign:
            safe = torch.where(scale > 0, scale, torch.ones_like(scale))
            g = self.g_min + (self.g_max - self.g_min) * (w.abs() / safe)
            return Conductances(g, None, scale, sign, weights.dtype)
        return self.pairs(weights, scale)

    def pairs(self, weights: Tensor, scale: Tensor) -> Conductances:
        """Differential pairs of `weights` with the scale max|W| `scale` (a float64 0-d tensor
        at least max|W|, unchecked): G+- = G_min + (G_max - G_min) * max(+-w, 0) / scale.

        No control flow depends on the values, so it runs under torch.func.vmap (the batched
        draws of a chip stream, noiseproof.evaluation.chipstream); `to_conductance` checks the
        scale and picks the scheme first.
        """
        w = weights.detach().to(torch.float64)
        span = self.g_max - self.g_min
        safe = torch.where(scale > 0, scale, torch.ones_like(scale))
        g_pos = self.g_min + span * (w.clamp(min=0) / safe)
        g_neg = self.g_min + span * ((-w).clamp(min=0) / safe)
        return Conductances(g_pos, g_neg, scale, 0, weights.dtype)

    def to_weights(self, programmed: Conductances) -> Tensor:
        """Effective weights read back: (G+ - G-) * max|W| / (G_max - G_min), in the weights' dtype.

        In the one-column scheme: sign * (G - G_min) * max|W| / (G_max - G_min).
        """
        per_us = programmed.scale / (self.g_max - self.g_min)
        if programmed.negative is None:
            w = programmed.sign * (programmed.positive - self.g_min) * per_us
        else:
            w = (programmed.positive - programmed.negative) * per_us
        return w.to(programmed.dtype)

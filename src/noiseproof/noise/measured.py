"""A noise model fitted from a user's measured devices: `{name: measured, file: device.yaml}`.

The device file is written by `noiseproof fit-device` (noiseproof.devicefit). It holds, in uS:
the conductance window (G_min, G_max) of the measured targets, a systematic offset
mu(G) = c0 + c1 G, the programming noise sigma(G) = p0 + p1 G + p2 G^2 (degree <= 2), the
fractions of cells stuck low / high with the conductance each cluster sits at, and, when the
measurements had repeated reads, the drift exponent nu ~ N(nu_mean, nu_std) of
G(t) = G(t0) (t / t0)^-nu (the power law of PCM drift, Ielmini et al. 2007; Joshi et al. 2020).

One transfer maps every on-chip tensor onto differential conductance pairs over the window with
its own max|W| (noiseproof.noise.mapping, Drolet et al. 2023), programs each device of target G

    G' = G + s mu(G) + s max(sigma(G), 0) N(0,1),  floored at 0,
    G'(t) = G' (t / t0)^-(s nu),  nu ~ N(nu_mean, nu_std),   only with `t_inference` = t,
    stuck:  with probability s p_low  G' ~ N(g_low, sd_low), with s p_high  G' ~ N(g_high,
            sd_high) (floored at 0; these devices do not drift),

and reads the weights back, optionally with pcm's drift compensation (`drift_compensation:
none | global | per_column`, only with `t_inference`): per tensor one digital scale
alpha = sum|W_P| / sum|W_t| (global), or one per output row j, alpha_j = sum_i |W_P[j, i]| /
sum_i |W_t[j, i]| (per_column), W_P the weights read back as programmed (before drift, from the
same draws) and W_t those read at t (noiseproof.noise.pcm; aihwkit's GlobalDriftCompensation
and PerColumnDriftCompensation). s is the sweep level `scale` (1: as measured, 0: ideal), as tio2's
`strength`. Random draws do not depend on s: one generator state gives the same chip, worse.
A device whose sigma(G) is negative anywhere in its window is refused when loaded (one line
saying where): clamped to 0 it would silently mean devices without programming noise there.
The max(., 0) only guards conductances a rounding puts a hair outside the window.

The fitted parameters are loaded from `file` when the config is validated (a relative path is
resolved against the current directory) and kept in the field `device`, so `spec()` and every
result record hold the numbers, not only the path: given `device` (as a recorded spec does),
the file is not read again and results stay reproducible if the file changes or moves.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from pathlib import Path
from typing import Any, ClassVar, Final, Literal, Self

import numpy as np
import torch
import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)
from torch import Tensor

from noiseproof.chip import Params
from noiseproof.noise.base import NoiseModel, noise_models
from noiseproof.noise.mapping import ConductanceMapping
from noiseproof.noise.pcm import output_index
from noiseproof.registry import describe_validation_error
from noiseproof.yamlio import load_yaml

DEVICE_FORMAT: Final = 1
"""Version of the device file layout (`format:` in the file)."""


class _Frozen(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)


class Polynomial(_Frozen):
    """A fitted polynomial c0 + c1 G + ... (ascending powers) with its coefficients' standard
    errors and covariance matrix."""

    coefficients: tuple[float, ...] = Field(min_length=1, max_length=3)
    std_errors: tuple[float, ...]
    covariance: tuple[tuple[float, ...], ...]

    @model_validator(mode="after")
    def _shapes(self) -> Self:
        n = len(self.coefficients)
        if len(self.std_errors) != n or len(self.covariance) != n:
            raise ValueError("std_errors and covariance must match the coefficients")
        if any(len(row) != n for row in self.covariance):
            raise ValueError("covariance must be square")
        return self

    def __call__(self, g: Tensor) -> Tensor:
        """The polynomial at conductances `g` (Horner's rule)."""
        out = torch.zeros_like(g)
        for c in reversed(self.coefficients):
            out = out * g + c
        return out


def polynomial_at(coefficients: Sequence[float], g: float) -> float:
    """c0 + c1 g + c2 g^2 + ... (ascending powers) at one conductance."""
    return sum(c * g**k for k, c in enumerate(coefficients))


def negative_parts(
    coefficients: Sequence[float], window: tuple[float, float]
) -> list[tuple[float, float]]:
    """The ranges [a, b] of the window where the polynomial is below 0 (empty: never)."""
    lo, hi = window
    degree = max((k for k, c in enumerate(coefficients) if c != 0), default=0)
    roots: np.ndarray | list[complex] = (
        np.polynomial.polynomial.polyroots(coefficients[: degree + 1]) if degree else []
    )
    real = {float(r.real) for r in np.atleast_1d(roots) if abs(r.imag) <= 1e-12 * (1 + abs(r))}
    cuts = sorted({lo, hi, *(r for r in real if lo < r < hi)})
    parts: list[tuple[float, float]] = []
    for a, b in zip(cuts, cuts[1:], strict=False):
        if polynomial_at(coefficients, (a + b) / 2) < 0:
            parts = [(parts[-1][0], b)] if parts and parts[-1][1] == a else [*parts, (a, b)]
    return parts


def lowest(coefficients: Sequence[float], window: tuple[float, float]) -> tuple[float, float]:
    """(G, value) of the polynomial's minimum over the window (degree <= 2)."""
    points = list(window)
    if len(coefficients) == 3 and coefficients[2] > 0:
        vertex = -coefficients[1] / (2 * coefficients[2])
        points += [vertex] if window[0] < vertex < window[1] else []
    return min(((g, polynomial_at(coefficients, g)) for g in points), key=lambda p: p[1])


def negative_sigma(coefficients: Sequence[float], window: tuple[float, float]) -> str | None:
    """None when sigma(G) >= 0 over the whole window, else where it is not: 'negative for G in
    0-1.6, 23.4-25 uS of the window 0-25 uS (lowest -0.048 uS at G = 0)'."""
    parts = negative_parts(coefficients, window)
    if not parts:
        return None
    g, value = lowest(coefficients, window)
    where = ", ".join(f"{a:.4g}-{b:.4g}" for a, b in parts)
    return (
        f"negative for G in {where} uS of the window {window[0]:.4g}-{window[1]:.4g} uS "
        f"(lowest {value:.3g} uS at G = {g:.4g})"
    )


class SigmaBin(_Frozen):
    """One bin of targets: its edges, working cells, mean target, sigma and sigma's standard
    error sigma / sqrt(2 (n - 1)) (all in uS but `cells`)."""

    lower_us: float
    upper_us: float
    cells: int = Field(ge=2)
    g_mean_us: float
    sigma_us: float = Field(ge=0)
    sigma_se_us: float = Field(ge=0)


class SigmaFit(Polynomial):
    """sigma(G) fitted over the bins, weighted by 1 / se^2, with its chi^2 per degree of
    freedom."""

    chi2_per_dof: float | None
    bins: tuple[SigmaBin, ...] = Field(min_length=1)


class StuckCluster(_Frozen):
    """Cells stuck far below (low) or above (high) their target: how many, the fraction of all
    cells with its binomial standard error, and the mean and std of their conductance (uS)."""

    cells: int = Field(ge=0)
    fraction: float = Field(ge=0, le=1)
    fraction_se: float = Field(ge=0)
    g_mean_us: float | None = None
    g_std_us: float | None = Field(None, ge=0)

    @model_validator(mode="after")
    def _values(self) -> Self:
        if self.fraction > 0 and (self.g_mean_us is None or self.g_std_us is None):
            raise ValueError("a cluster with cells needs g_mean_us and g_std_us")
        return self


class Drift(_Frozen):
    """G(t) = G(t0) (t/t0)^-nu with nu ~ N(nu_mean, nu_std) per device, from per-cell fits."""

    t0_s: float = Field(gt=0)
    cells: int = Field(ge=2)
    nu_mean: float
    nu_mean_se: float = Field(ge=0)
    nu_std: float = Field(ge=0)
    nu_std_se: float = Field(ge=0)
    nu_fit_se_rms: float = Field(ge=0)


class MeasuredDevice(_Frozen):
    """Everything `noiseproof fit-device` fitted (the device file's content)."""

    format: Literal[1] = DEVICE_FORMAT
    source: str
    cells: int = Field(ge=1)
    window_us: tuple[float, float]
    offset: Polynomial
    sigma: SigmaFit
    stuck_threshold_sigma: float = Field(gt=0)
    stuck_low: StuckCluster
    stuck_high: StuckCluster
    drift: Drift | None = None

    @model_validator(mode="after")
    def _window(self) -> Self:
        g_min, g_max = self.window_us
        if not 0 <= g_min < g_max:
            raise ValueError(f"window_us needs 0 <= g_min < g_max, got {list(self.window_us)}")
        if self.stuck_low.fraction + self.stuck_high.fraction > 1:
            raise ValueError("stuck fractions add up to more than 1")
        return self

    @field_validator("sigma")
    @classmethod
    def _sigma_not_negative(cls, sigma: SigmaFit, info: ValidationInfo) -> SigmaFit:
        window = info.data.get("window_us")
        if window is None or not window[0] < window[1]:  # the window's own check says why
            return sigma
        if (negative := negative_sigma(sigma.coefficients, window)) is not None:
            raise ValueError(
                f"{negative}: a programming noise below 0 would silently mean no noise there; "
                "fit the device again (fit-device refuses such a fit)"
            )
        return sigma


@functools.lru_cache(maxsize=16)
def _read_device(path: str, mtime_ns: int) -> MeasuredDevice:
    """The device file at `path` (cached by path and modification time)."""
    try:
        raw = load_yaml(Path(path).read_bytes().decode("utf-8"))
    except (UnicodeDecodeError, yaml.YAMLError):
        raise ValueError(f"device file {path} is not valid YAML") from None
    if not isinstance(raw, dict):
        raise ValueError(f"device file {path} must hold a mapping (written by fit-device)")
    try:
        return MeasuredDevice(**raw)
    except ValidationError as error:
        raise ValueError(describe_validation_error(f"device file {path}", error)) from None


def load_device(path: str | Path) -> MeasuredDevice:
    """The fitted device in a file written by `noiseproof fit-device`; ValueError naming the
    file if it is missing, not YAML, or not a device file."""
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"device file not found: {path}")
    return _read_device(str(path), path.stat().st_mtime_ns)


def compensated(now: Tensor, then: Tensor, compensation: str) -> Tensor:
    """`now` (one tensor's weights read after drift) times pcm's drift compensation scale:
    alpha = sum|then| / sum|now| over the tensor (global) or over each output row (per_column,
    the entries along the first dimension), 1 where sum|now| = 0."""
    flat_now, flat_then = now.reshape(-1).to(torch.float64), then.reshape(-1).to(torch.float64)
    outputs = output_index([now], compensation, now.device)
    size = int(outputs.max()) + 1
    reference = flat_now.new_zeros(size).index_add_(0, outputs, flat_then.abs())
    current = flat_now.new_zeros(size).index_add_(0, outputs, flat_now.abs())
    alpha = torch.where(current > 0, reference / current, torch.ones_like(current))
    return (flat_now * alpha[outputs]).reshape(now.shape).to(now.dtype)


@noise_models.register("measured")
class Measured(NoiseModel):
    """A device fitted by `noiseproof fit-device`: offset, sigma(G), stuck cells, drift.

    Weights sit on differential conductance pairs over the measured window; the formulas are
    in the module docstring.
    """

    level_field: ClassVar[str] = "scale"
    file: str = Field(
        description="device YAML of `noiseproof fit-device` (relative: to the current folder)"
    )
    scale: float = Field(
        1.0,
        ge=0,
        allow_inf_nan=False,
        description="sweep level: scales every effect (1: as measured, 0: ideal)",
    )
    t_inference: float | None = Field(
        None, gt=0, allow_inf_nan=False, description="read time (s) for drift; None: at t0"
    )
    scheme: Literal["differential", "auto"] = Field(
        "differential",
        description="differential pairs, or one column when a tensor's weights share a sign (auto)",
    )
    drift_compensation: Literal["none", "global", "per_column"] = Field(
        "none",
        description="digital output scale per tensor (global) or per output (per_column), "
        "as pcm's; needs t_inference",
    )
    device: MeasuredDevice | None = Field(
        None,
        validate_default=True,
        description="the fitted parameters: read from `file` when not given (results record them)",
    )

    @field_validator("file")
    @classmethod
    def _absolute(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("file is empty: give the device YAML written by fit-device")
        return str(Path.cwd() / Path(value).expanduser())

    @field_validator("device", mode="before")
    @classmethod
    def _load(cls, value: Any, info: ValidationInfo) -> Any:
        if value is None and "file" in info.data:
            return load_device(info.data["file"])
        return value

    @model_validator(mode="after")
    def _drift(self) -> Self:
        if self.drift_compensation != "none" and self.t_inference is None:
            raise ValueError(
                "drift_compensation needs t_inference (a read after drift): without it the "
                "chip is read as programmed and there is no drift to compensate"
            )
        if self.t_inference is None or self.device is None:
            return self
        if self.device.drift is None:
            raise ValueError(
                f"t_inference needs drift, and {self.file} has none: fit it from measurements "
                "with time_s and g_read columns"
            )
        if self.t_inference < self.device.drift.t0_s:
            raise ValueError(
                f"t_inference ({self.t_inference:g} s) must be >= the device's t0 "
                f"({self.device.drift.t0_s:g} s)"
            )
        return self

    @property
    def fitted(self) -> MeasuredDevice:
        """The fitted device (always set once validated)."""
        assert self.device is not None  # set from `file` by the validator
        return self.device

    def conductance_window(self) -> tuple[float, float]:
        """(G_min, G_max) in uS: the range of the measured targets the weights are mapped on."""
        return self.fitted.window_us

    @property
    def mapping(self) -> ConductanceMapping:
        """Weights <-> conductance pairs over the measured window (Drolet et al. 2023)."""
        g_min, g_max = self.fitted.window_us
        return ConductanceMapping(g_min_us=g_min, g_max_us=g_max, scheme=self.scheme)

    def program_column(self, g: Tensor, generator: torch.Generator) -> tuple[Tensor, Tensor]:
        """Program one column of target conductances `g` (uS, float64): (actual G, stuck mask),
        by the formulas of the module docstring; six draws per device, whatever the level."""
        _, now, stuck = self.devices(g, generator)
        return now, stuck

    def devices(self, g: Tensor, generator: torch.Generator) -> tuple[Tensor, Tensor, Tensor]:
        """(G as programmed, G read at t_inference, stuck mask) of one column of targets `g`
        (`program_column`'s draws; the two are equal without t_inference and on stuck cells)."""
        s, device, shape = self.scale, self.fitted, g.shape

        def draw(kind: Any) -> Tensor:
            made = kind(shape, generator=generator, dtype=torch.float64, device=generator.device)
            return made.to(g.device)

        kinds = (torch.randn, torch.randn, torch.rand, torch.rand, torch.randn, torch.randn)
        noise, nu_z, hit, kind, low_z, high_z = (draw(k) for k in kinds)
        sigma = device.sigma(g).clamp(min=0)
        out = (g + s * device.offset(g) + s * sigma * noise).clamp(min=0)
        programmed = out
        if self.t_inference is not None and device.drift is not None:
            drift = device.drift
            nu = s * (drift.nu_mean + drift.nu_std * nu_z)
            out = out * (self.t_inference / drift.t0_s) ** (-nu)
        low, high = device.stuck_low, device.stuck_high
        p_low, p_high = s * low.fraction, s * high.fraction
        stuck = torch.zeros(shape, dtype=torch.bool, device=g.device)
        if p_low + p_high > 0:
            stuck = hit < min(1.0, p_low + p_high)
            is_low = kind < p_low / (p_low + p_high)
            low_g = ((low.g_mean_us or 0.0) + (low.g_std_us or 0.0) * low_z).clamp(min=0)
            high_g = ((high.g_mean_us or 0.0) + (high.g_std_us or 0.0) * high_z).clamp(min=0)
            stuck_g = torch.where(is_low, low_g, high_g)
            out = torch.where(stuck, stuck_g, out)
            programmed = torch.where(stuck, stuck_g, programmed)
        return programmed, out, stuck

    @torch.no_grad()
    def sample_with_faults(
        self, params: Params, generator: torch.Generator
    ) -> tuple[Params, dict[str, Tensor]]:
        """One transfer (weights read back) and, per tensor, the weights on a stuck device."""
        weights, masks = {}, {}
        mapping = self.mapping
        for name, tensor in params.items():
            if tensor.numel() == 0:
                weights[name] = tensor.detach().clone()
                continue
            target = mapping.to_conductance(tensor)
            programmed = [self.devices(g, generator) for g in target.columns]
            now = mapping.to_weights(target.with_columns(*(c[1] for c in programmed)))
            if self.drift_compensation != "none":
                then = mapping.to_weights(target.with_columns(*(c[0] for c in programmed)))
                now = compensated(now, then, self.drift_compensation)
            weights[name] = now
            stuck = programmed[0][2]
            for *_, column in programmed[1:]:
                stuck = stuck | column
            masks[name] = stuck
        return weights, masks

    def sample(self, params: Params, generator: torch.Generator) -> Params:
        """One transfer: the effective weights of one programmed chip."""
        return self.sample_with_faults(params, generator)[0]

"""Fit a `measured` device from measurements: offset, sigma(G), stuck cells, drift.

Residuals r = g_programmed - g_target (uS) of the cells are modelled as
r = mu(G) + sigma(G) N(0,1) for working cells, mu(G) = c0 + c1 G, with G the target.

1. Stuck cells are separated first, by iterative sigma clipping (the standard robust
   estimator of astronomy, e.g. astropy.stats.sigma_clip): starting from each target bin's
   median and 1.4826 x median absolute deviation (robust to the stuck cells), a cell is
   working when |r - mu(G)| <= k sigma(G) (k: `stuck_threshold`, sigma(G) interpolated between
   the bins' centres); mu and the bins' sigmas are refitted on the working cells until the set
   stops changing. The other cells are stuck low (below mu) or high; their fractions carry the
   binomial standard error sqrt(f (1 - f) / N). A stuck cell within k sigma of its target cannot
   be told from a working one: the fractions count the cells that can.
2. Offset: weighted least squares of r on (1, G) over the working cells, weights 1/sigma(G)^2,
   covariance (X^T W X)^-1 (Numerical Recipes, 3rd ed., section 15.4).
3. sigma(G): `bins` equal-width bins of G over the window; per bin the sample std of
   r - mu(G) (ddof 1) and its standard error sigma / sqrt(2 (n - 1)) (the normal-theory
   standard error of a sample std); then a polynomial of degree <= 2 through the bins' (mean
   G, sigma), weighted by 1/se, with the coefficients' covariance (numpy.polyfit with
   cov="unscaled": the weights are 1/standard errors) and chi^2 per degree of freedom.
4. Drift (with reads): per working cell, nu = -slope of ln g_read on ln(t / t0) by least
   squares over its reads (t0: the earliest read time), with its standard error from the
   residuals; nu_mean is their mean, nu_std their spread with the fits' own noise removed,
   sqrt(var(nu) - mean(se^2)) (method of moments; 0 if negative).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Self

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, model_validator

from noiseproof.devicefit.measurements import Measurements
from noiseproof.errors import NoiseproofError
from noiseproof.noise.measured import (
    Drift,
    MeasuredDevice,
    Polynomial,
    SigmaBin,
    SigmaFit,
    StuckCluster,
    negative_sigma,
)

MIN_CELLS_PER_BIN = 30
"""Working cells a bin needs: its sigma's standard error 1/sqrt(2 x 29) is then <= 13 %."""
MAX_CLIP_ROUNDS = 50
"""Sigma-clipping rounds at most (it settles in a few on any data seen)."""
MAD_TO_SIGMA = 1.4826
"""sigma of a normal distribution per median absolute deviation (1 / Phi^-1(3/4))."""


class FitSettings(BaseModel):
    """Options of the fit: target bins, the degree of sigma(G), the stuck threshold."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    bins: int = Field(10, ge=1, strict=True, description="equal-width bins of target G")
    degree: int = Field(2, ge=0, le=2, strict=True, description="degree of sigma(G)")
    stuck_threshold: float = Field(
        5.0, gt=0, allow_inf_nan=False, description="|r - mu(G)| > k sigma(G): stuck"
    )

    @model_validator(mode="after")
    def _enough_bins(self) -> Self:
        if self.bins < self.degree + 2:
            raise ValueError(
                f"bins ({self.bins}) must be >= degree + 2 ({self.degree + 2}): the polynomial "
                "needs one bin more than its coefficients"
            )
        return self


@dataclass(frozen=True)
class DeviceFit:
    """The fitted device and, per cell, what the fit decided (for the plot): working, stuck
    low, stuck high masks, and each working cell's drift exponent (None without reads)."""

    device: MeasuredDevice
    measurements: Measurements
    working: np.ndarray
    stuck_low: np.ndarray
    nu: np.ndarray | None


def _bins(g: np.ndarray, window: tuple[float, float], bins: int) -> np.ndarray:
    """The equal-width bin of each target over the window (the top edge in the last bin)."""
    g_min, g_max = window
    return np.minimum(((g - g_min) / (g_max - g_min) * bins).astype(np.int64), bins - 1)


def _check_counts(counts: np.ndarray, window: tuple[float, float], what: str) -> None:
    """NoiseproofError naming the first bin with fewer than MIN_CELLS_PER_BIN cells."""
    bins = len(counts)
    low = np.flatnonzero(counts < MIN_CELLS_PER_BIN)
    if low.size:
        k = int(low[0])
        width = (window[1] - window[0]) / bins
        lower, upper = window[0] + k * width, window[0] + (k + 1) * width
        raise NoiseproofError(
            f"bin {k + 1} of {bins} (g_target {lower:.4g}-{upper:.4g} uS) has {counts[k]} "
            f"{what}: need >= {MIN_CELLS_PER_BIN} (give fewer --bins or measure more cells)"
        )


def _robust_start(
    g: np.ndarray, r: np.ndarray, index: np.ndarray, bins: int
) -> tuple[np.ndarray, np.ndarray]:
    """(mu, sigma) at each cell from its bin's median and 1.4826 MAD, interpolated between the
    bins' median targets (insensitive to a minority of stuck cells)."""
    centre, mid, spread = np.empty(bins), np.empty(bins), np.empty(bins)
    for k in range(bins):
        inside = r[index == k]
        centre[k] = np.median(g[index == k])
        mid[k] = np.median(inside)
        spread[k] = MAD_TO_SIGMA * np.median(np.abs(inside - mid[k]))
    return np.interp(g, centre, mid), np.interp(g, centre, spread)


def _weighted_line(g: np.ndarray, r: np.ndarray, sigma: np.ndarray) -> Polynomial:
    """r = c0 + c1 g by weighted least squares (weights 1/sigma^2), covariance (X^T W X)^-1."""
    design = np.stack([np.ones_like(g), g], axis=1) / sigma[:, None]
    coefficients, *_ = np.linalg.lstsq(design, r / sigma, rcond=None)
    covariance = np.linalg.inv(design.T @ design)
    return _polynomial(coefficients, covariance)


def _polynomial(coefficients: np.ndarray, covariance: np.ndarray) -> Polynomial:
    """A Polynomial (ascending powers) from numpy arrays."""
    return Polynomial(
        coefficients=tuple(float(c) for c in coefficients),
        std_errors=tuple(float(s) for s in np.sqrt(np.diag(covariance))),
        covariance=tuple(tuple(float(v) for v in row) for row in covariance),
    )


def _bin_sigmas(
    g: np.ndarray, residual: np.ndarray, index: np.ndarray, window: tuple[float, float], bins: int
) -> tuple[SigmaBin, ...]:
    """Per bin: edges, cells, mean target, sample std (ddof 1) and its standard error."""
    counts = np.bincount(index, minlength=bins)
    _check_counts(counts, window, "working cells")
    width = (window[1] - window[0]) / bins
    out = []
    for k in range(bins):
        inside = index == k
        n, sigma = int(counts[k]), float(np.std(residual[inside], ddof=1))
        if sigma == 0:
            raise NoiseproofError(f"bin {k + 1} of {bins}: every cell has the same residual")
        out.append(
            SigmaBin(
                lower_us=window[0] + k * width,
                upper_us=window[0] + (k + 1) * width,
                cells=n,
                g_mean_us=float(np.mean(g[inside])),
                sigma_us=sigma,
                sigma_se_us=sigma / np.sqrt(2 * (n - 1)),
            )
        )
    return tuple(out)


def _sigma_polynomial(bins: tuple[SigmaBin, ...], degree: int) -> SigmaFit:
    """sigma(G) through the bins by numpy.polyfit weighted by 1/se (cov="unscaled")."""
    x = np.array([b.g_mean_us for b in bins])
    y = np.array([b.sigma_us for b in bins])
    se = np.array([b.sigma_se_us for b in bins])
    coefficients, covariance = np.polyfit(x, y, degree, w=1 / se, cov="unscaled")
    coefficients, covariance = coefficients[::-1], covariance[::-1, ::-1]  # ascending powers
    fitted = np.polynomial.polynomial.polyval(x, coefficients)
    dof = len(bins) - degree - 1
    chi2 = float(np.sum(((y - fitted) / se) ** 2) / dof) if dof > 0 else None
    line = _polynomial(coefficients, covariance).model_dump()
    return SigmaFit(**line, chi2_per_dof=chi2, bins=bins)


def _positive_sigma(
    bins: tuple[SigmaBin, ...], degree: int, window: tuple[float, float]
) -> SigmaFit:
    """sigma(G) of `degree` through the bins; NoiseproofError (one line) when it is negative
    anywhere in the window, naming where and the highest lower degree that stays positive
    (degree 0, a weighted mean of the bins' positive sigmas, always does)."""
    sigma = _sigma_polynomial(bins, degree)
    negative = negative_sigma(sigma.coefficients, window)
    if negative is None:
        return sigma
    lower = next(
        d
        for d in range(degree - 1, -1, -1)
        if negative_sigma(_sigma_polynomial(bins, d).coefficients, window) is None
    )
    raise NoiseproofError(
        f"sigma(G) fitted with --degree {degree} is {negative}: a programming noise below 0 "
        f"means nothing (clamped to 0 it would mean no noise there); fit --degree {lower}, "
        "which stays positive, or measure more cells where it dips"
    )


def _cluster(g_programmed: np.ndarray, stuck: np.ndarray, cells: int) -> StuckCluster:
    """Count, fraction with its binomial standard error, mean and std of a stuck cluster."""
    n = int(stuck.sum())
    fraction = n / cells
    values = g_programmed[stuck]
    return StuckCluster(
        cells=n,
        fraction=fraction,
        fraction_se=float(np.sqrt(fraction * (1 - fraction) / cells)),
        g_mean_us=float(values.mean()) if n else None,
        g_std_us=float(values.std(ddof=1)) if n > 1 else (0.0 if n else None),
    )


def _drift(m: Measurements, working: np.ndarray) -> tuple[Drift, np.ndarray]:
    """Per working cell nu = -d ln G / d ln(t/t0) by least squares, and their statistics."""
    reads = m.reads
    assert reads is not None
    t0 = float(reads.time_s.min())
    keep = working[reads.cell]
    if np.any(reads.g_read[keep] <= 0):
        bad = m.cells[int(reads.cell[keep][np.argmax(reads.g_read[keep] <= 0)])]
        raise NoiseproofError(
            f"{m.source}: working cell {bad} has a read g_read <= 0: drift is fitted on ln G"
        )
    cells, inverse = np.unique(reads.cell[keep], return_inverse=True)
    if len(cells) < 2:
        raise NoiseproofError(f"{m.source}: drift needs reads of >= 2 working cells")
    x = np.log(reads.time_s[keep] / t0)
    y = np.log(reads.g_read[keep])
    n = np.bincount(inverse).astype(float)
    dx = x - (np.bincount(inverse, x) / n)[inverse]
    dy = y - (np.bincount(inverse, y) / n)[inverse]
    sxx, sxy, syy = (np.bincount(inverse, a * b) for a, b in ((dx, dx), (dx, dy), (dy, dy)))
    slope = sxy / sxx
    residual_var = np.maximum(syy - slope * sxy, 0) / (n - 2)
    se2 = residual_var / sxx
    nu = -slope
    count = len(nu)
    observed_var = float(np.var(nu, ddof=1))
    fit_var = float(np.mean(se2))
    drift = Drift(
        t0_s=t0,
        cells=count,
        nu_mean=float(nu.mean()),
        nu_mean_se=float(np.sqrt(observed_var / count)),
        nu_std=float(np.sqrt(max(observed_var - fit_var, 0.0))),
        nu_std_se=float(np.sqrt(observed_var / (2 * (count - 1)))),
        nu_fit_se_rms=float(np.sqrt(fit_var)),
    )
    return drift, nu


def _separate_stuck(
    g: np.ndarray,
    r: np.ndarray,
    index: np.ndarray,
    window: tuple[float, float],
    settings: FitSettings,
) -> tuple[np.ndarray, Polynomial, tuple[SigmaBin, ...], np.ndarray]:
    """Iterative sigma clipping (module docstring, step 1): (working mask, offset fit, sigma
    bins, mu at each cell), all fitted on the final working cells."""
    mu_at, sigma_at = _robust_start(g, r, index, settings.bins)
    if np.any(sigma_at <= 0):
        raise NoiseproofError("a bin's residuals g_programmed - g_target have no spread (MAD 0)")
    working = None
    for _ in range(MAX_CLIP_ROUNDS):
        inside = np.abs(r - mu_at) <= settings.stuck_threshold * sigma_at
        if working is not None and np.array_equal(inside, working):
            break
        working = inside
        offset = _weighted_line(g[working], r[working], sigma_at[working])
        mu_at = np.polynomial.polynomial.polyval(g, offset.coefficients)
        bins = _bin_sigmas(g[working], (r - mu_at)[working], index[working], window, settings.bins)
        sigma_at = np.interp(g, [b.g_mean_us for b in bins], [b.sigma_us for b in bins])
    assert working is not None
    return working, offset, bins, mu_at


def fit_device(m: Measurements, settings: FitSettings | None = None) -> DeviceFit:
    """Fit offset, sigma(G), stuck fractions and drift to measurements (module docstring);
    NoiseproofError naming the bin or cell that lacks data."""
    if not isinstance(m, Measurements):
        raise TypeError(f"m must be Measurements (read_measurements), got {type(m).__name__}")
    settings = FitSettings() if settings is None else settings
    if not isinstance(settings, FitSettings):
        raise TypeError(f"settings must be FitSettings, got {type(settings).__name__}")
    g, programmed = m.g_target, m.g_programmed
    r = programmed - g
    window = (float(g.min()), float(g.max()))
    if window[0] == window[1]:
        raise NoiseproofError(f"{m.source}: every g_target is {window[0]:g}: need a range")
    index = _bins(g, window, settings.bins)
    _check_counts(np.bincount(index, minlength=settings.bins), window, "cells")
    working, offset, bins, mu_at = _separate_stuck(g, r, index, window, settings)
    low = ~working & (r < mu_at)
    drift, nu = _drift(m, working) if m.reads is not None else (None, None)
    device = MeasuredDevice(
        source=m.source,
        cells=len(g),
        window_us=window,
        offset=offset,
        sigma=_positive_sigma(bins, settings.degree, window),
        stuck_threshold_sigma=settings.stuck_threshold,
        stuck_low=_cluster(programmed, low, len(g)),
        stuck_high=_cluster(programmed, ~working & ~low, len(g)),
        drift=drift,
    )
    return DeviceFit(device, m, working, low, nu)

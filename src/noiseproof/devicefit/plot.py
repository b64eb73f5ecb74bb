"""The data-vs-fit figure of `noiseproof fit-device`: programmed vs target with the fitted mean
and +-sigma band, sigma per bin with error bars and the polynomial, and the drift exponents."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from noiseproof.devicefit.fit import DeviceFit
from noiseproof.plotting import pyplot, save_figure

MAX_POINTS = 5000
"""Working cells drawn in the scatter at most (an even subsample: the PNG stays small)."""


def _poly(coefficients: tuple[float, ...], g: np.ndarray) -> np.ndarray:
    return np.polynomial.polynomial.polyval(g, coefficients)


def fit_plot(fit: DeviceFit, path: str | Path) -> Path:
    """Write the figure as PNG: 2 panels, 3 with drift (nu histogram with the fitted normal)."""
    device, m = fit.device, fit.measurements
    plt = pyplot()
    panels = 3 if fit.nu is not None else 2
    figure, axes = plt.subplots(1, panels, figsize=(5.2 * panels, 4.4))
    step = max(1, len(m.g_target) // MAX_POINTS)
    shown = np.zeros(len(m.g_target), dtype=bool)
    shown[::step] = True
    g = np.linspace(*device.window_us, 200)
    mean = g + _poly(device.offset.coefficients, g)
    sigma = np.maximum(_poly(device.sigma.coefficients, g), 0)
    scatter = axes[0]
    for mask, label, colour in (
        (fit.working, "working", "tab:blue"),
        (fit.stuck_low, "stuck low", "tab:orange"),
        (~fit.working & ~fit.stuck_low, "stuck high", "tab:red"),
    ):
        chosen = mask & (shown | ~fit.working)  # every stuck cell, a subsample of the rest
        count = int(mask.sum())
        scatter.scatter(
            m.g_target[chosen],
            m.g_programmed[chosen],
            s=3,
            alpha=0.4,
            color=colour,
            label=f"{label} ({count})",
        )
    scatter.plot(g, mean, color="black", label="target + offset(G)")
    scatter.fill_between(
        g, mean - sigma, mean + sigma, color="black", alpha=0.2, label="+- sigma(G)"
    )
    scatter.set_xlabel("target G (uS)")
    scatter.set_ylabel("programmed G (uS)")
    scatter.set_title(
        f"{device.cells} cells" + (f", every {step}th working cell shown" if step > 1 else "")
    )
    scatter.legend(fontsize=8, markerscale=3)
    bins = device.sigma.bins
    noise = axes[1]
    noise.errorbar(
        [b.g_mean_us for b in bins],
        [b.sigma_us for b in bins],
        yerr=[b.sigma_se_us for b in bins],
        fmt="o",
        label="bins (+- se)",
    )
    cov = np.array(device.sigma.covariance)
    powers = np.vander(g, len(device.sigma.coefficients), increasing=True)
    band = np.sqrt(np.einsum("ij,jk,ik->i", powers, cov, powers))
    fitted = _poly(device.sigma.coefficients, g)
    noise.plot(g, fitted, color="black", label=f"degree {len(cov) - 1} fit")
    noise.fill_between(g, fitted - band, fitted + band, color="black", alpha=0.2, label="+- its se")
    noise.set_xlabel("target G (uS)")
    noise.set_ylabel("sigma of programmed - target (uS)")
    noise.set_title(f"programming noise, chi2/dof {device.sigma.chi2_per_dof or 0:.2f}")
    noise.legend(fontsize=8)
    if fit.nu is not None and device.drift is not None:
        drift = device.drift
        axis = axes[2]
        axis.hist(fit.nu, bins=60, density=True, alpha=0.6, label=f"{drift.cells} cells")
        nu = np.linspace(float(fit.nu.min()), float(fit.nu.max()), 200)
        width = np.hypot(drift.nu_std, drift.nu_fit_se_rms)
        if width > 0:
            z = (nu - drift.nu_mean) / width
            density = np.exp(-0.5 * z**2) / (width * np.sqrt(2 * np.pi))
            axis.plot(nu, density, color="black", label="N(nu_mean, nu_std) + fit noise")
        axis.set_xlabel("drift exponent nu")
        axis.set_title(f"nu = {drift.nu_mean:.4g} +- {drift.nu_std:.3g}, t0 = {drift.t0_s:g} s")
        axis.legend(fontsize=8)
    figure.tight_layout()
    return save_figure(figure, Path(path))

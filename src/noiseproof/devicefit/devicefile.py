"""The device YAML written by `noiseproof fit-device`: the fitted numbers with comments giving
units and uncertainties, and the same numbers as a text summary.

Values are written as JSON scalars and flow lists (valid YAML; floats in Python's shortest
round-trip form), so the file loads back to exactly the fitted numbers.
"""

from __future__ import annotations

import json
from typing import Any

from noiseproof.noise.measured import MeasuredDevice, Polynomial, StuckCluster


def _v(value: Any) -> str:
    """A value as a YAML flow scalar or list (JSON syntax)."""
    return json.dumps(value)


def _polynomial_lines(poly: Polynomial) -> list[str]:
    return [
        f"  coefficients: {_v(list(poly.coefficients))}   # ascending powers of G",
        f"  std_errors: {_v(list(poly.std_errors))}",
        f"  covariance: {_v([list(row) for row in poly.covariance])}",
    ]


def _cluster_lines(name: str, cluster: StuckCluster) -> list[str]:
    return [
        f"{name}:",
        f"  cells: {cluster.cells}",
        f"  fraction: {_v(cluster.fraction)}   # +- {cluster.fraction_se:.2g} (binomial se)",
        f"  fraction_se: {_v(cluster.fraction_se)}",
        f"  g_mean_us: {_v(cluster.g_mean_us)}   # conductance of these cells: mean (uS)",
        f"  g_std_us: {_v(cluster.g_std_us)}   # and std (uS)",
    ]


def device_yaml(device: MeasuredDevice) -> str:
    """The device file's text: every field of `device`, commented."""
    offset, sigma = device.offset, device.sigma
    terms = " + ".join(["p0", "p1 G", "p2 G^2"][: len(sigma.coefficients)])
    lines = [
        "# noiseproof measured device, written by `noiseproof fit-device`.",
        "# Use it as a noise model: noise: [{name: measured, file: THIS_FILE}]",
        "# Conductances G in microsiemens (uS), times in seconds; se = standard error.",
        f"format: {device.format}",
        f"source: {_v(device.source)}   # the measurements it was fitted from",
        f"cells: {device.cells}",
        f"window_us: {_v(list(device.window_us))}   # [G_min, G_max]: range of the targets",
        "offset:   # programmed - target = c0 + c1 G (uS), weighted least squares",
        *_polynomial_lines(offset),
        f"sigma:   # programming noise sigma(G) = {terms} (uS), fit over the bins",
        *_polynomial_lines(sigma),
        f"  chi2_per_dof: {_v(sigma.chi2_per_dof)}   # of the polynomial through the bins",
        "  bins:   # per target bin: working cells, mean target, sigma and its se (uS)",
        *(f"    - {_v(b.model_dump())}" for b in sigma.bins),
        f"stuck_threshold_sigma: {_v(device.stuck_threshold_sigma)}"
        "   # |G - target - offset| > this x sigma(G): stuck",
        *_cluster_lines("stuck_low", device.stuck_low),
        *_cluster_lines("stuck_high", device.stuck_high),
    ]
    drift = device.drift
    if drift is None:
        lines.append("drift: null   # no time_s/g_read columns: no drift fitted")
    else:
        lines += [
            "drift:   # G(t) = G(t0) (t/t0)^-nu, nu ~ N(nu_mean, nu_std) per device",
            f"  t0_s: {_v(drift.t0_s)}   # the earliest read time: g_programmed is G(t0)",
            f"  cells: {drift.cells}   # working cells with reads",
            f"  nu_mean: {_v(drift.nu_mean)}   # +- {drift.nu_mean_se:.2g}",
            f"  nu_mean_se: {_v(drift.nu_mean_se)}",
            f"  nu_std: {_v(drift.nu_std)}   # +- {drift.nu_std_se:.2g}, per-cell fit noise "
            "removed",
            f"  nu_std_se: {_v(drift.nu_std_se)}",
            f"  nu_fit_se_rms: {_v(drift.nu_fit_se_rms)}   # rms se of one cell's nu",
        ]
    return "\n".join(lines) + "\n"


def summary_rows(device: MeasuredDevice) -> tuple[list[str], list[list[str]]]:
    """(header, rows) of the fitted parameters with their standard errors, for a text table."""

    def row(name: str, value: float | None, se: float | None, unit: str) -> list[str]:
        return [
            name,
            "-" if value is None else f"{value:.6g}",
            "-" if se is None else f"{se:.2g}",
            unit,
        ]

    units = ["uS", "1", "1/uS"]
    rows = [
        row("g_min", device.window_us[0], None, "uS"),
        row("g_max", device.window_us[1], None, "uS"),
        *(
            row(f"offset c{k}", c, s, units[k])
            for k, (c, s) in enumerate(
                zip(device.offset.coefficients, device.offset.std_errors, strict=True)
            )
        ),
        *(
            row(f"sigma p{k}", c, s, units[k])
            for k, (c, s) in enumerate(
                zip(device.sigma.coefficients, device.sigma.std_errors, strict=True)
            )
        ),
        row("sigma chi2/dof", device.sigma.chi2_per_dof, None, ""),
    ]
    for name, cluster in (("stuck_low", device.stuck_low), ("stuck_high", device.stuck_high)):
        rows += [
            row(f"{name} fraction", cluster.fraction, cluster.fraction_se, ""),
            row(f"{name} G mean", cluster.g_mean_us, None, "uS"),
            row(f"{name} G std", cluster.g_std_us, None, "uS"),
        ]
    if device.drift is not None:
        rows += [
            row("drift t0", device.drift.t0_s, None, "s"),
            row("drift nu mean", device.drift.nu_mean, device.drift.nu_mean_se, ""),
            row("drift nu std", device.drift.nu_std, device.drift.nu_std_se, ""),
        ]
    return ["parameter", "value", "se", "unit"], rows

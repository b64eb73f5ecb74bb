"""A known device to fit (synthetic measurements) and the per-weight statistics of a `measured`
chip, written from the formulas with plain floats, sharing no code with noiseproof.

Run as a script it writes the synthetic CSV the README's recovery numbers come from:
`python tests/reference/measured_reference.py measurements.csv`.
"""

from __future__ import annotations

import csv
import math
import sys
from pathlib import Path

import numpy as np

DEVICE_FIXTURE = Path(__file__).resolve().parent.parent / "noise" / "measured_device.yaml"
"""A device file fitted from `synthetic_measurements(3000, seed=1)` (the contract tests' device;
tests/noise/test_fit_device.py checks it is what the fit gives)."""

TRUE = {
    "window": (20.0, 200.0),  # targets uniform in this window (uS)
    "offset": (1.0, 0.01),  # mu(G) = 1 + 0.01 G (uS)
    "sigma": (0.5, 0.02, 5e-5),  # sigma(G) = 0.5 + 0.02 G + 5e-5 G^2 (uS)
    "stuck_low": (0.01, 2.0, 0.5),  # fraction, G mean, G std (uS)
    "stuck_high": (0.005, 300.0, 20.0),
    "nu": (0.05, 0.01),  # drift exponent mean, std
    "times": (1.0, 10.0, 100.0, 1000.0),  # read times (s); t0 = 1 s
    "read_noise": 0.002,  # relative std of one read
}
"""The known model the synthetic measurements are drawn from."""


def polynomial(coefficients: tuple[float, ...], g: float) -> float:
    """c0 + c1 g + c2 g^2 + ..."""
    return sum(c * g**k for k, c in enumerate(coefficients))


def synthetic_measurements(cells: int, seed: int, reads: bool = True) -> list[dict[str, str]]:
    """CSV rows of `cells` cells drawn from TRUE, one row per read when `reads` (which cells
    are stuck: `stuck_kinds(cells, seed)`)."""
    rng = np.random.default_rng(seed)
    g_min, g_max = TRUE["window"]
    target = rng.uniform(g_min, g_max, cells)
    sigma = np.array([polynomial(TRUE["sigma"], g) for g in target])
    programmed = target + np.array([polynomial(TRUE["offset"], g) for g in target])
    programmed = programmed + sigma * rng.standard_normal(cells)
    kind = stuck_kinds(cells, seed)
    for name, code in (("stuck_low", 1), ("stuck_high", 2)):
        _, mean, std = TRUE[name]
        values = np.maximum(mean + std * rng.standard_normal(cells), 0.0)
        programmed = np.where(kind == code, values, programmed)
    nu = TRUE["nu"][0] + TRUE["nu"][1] * rng.standard_normal(cells)
    nu = np.where(kind == 0, nu, 0.0)  # stuck cells do not drift
    rows = []
    for i in range(cells):
        base = {
            "cell": f"c{i}",
            "g_target": repr(float(target[i])),
            "g_programmed": repr(float(programmed[i])),
        }
        if not reads:
            rows.append(base)
            continue
        for t in TRUE["times"]:
            noise = 1 + TRUE["read_noise"] * rng.standard_normal()
            g_read = programmed[i] * (t / TRUE["times"][0]) ** (-nu[i]) * noise
            rows.append({**base, "time_s": repr(t), "g_read": repr(float(g_read))})
    return rows


def stuck_kinds(cells: int, seed: int) -> np.ndarray:
    """Per cell 0 (working), 1 (stuck low) or 2 (stuck high), from its own stream."""
    u = np.random.default_rng([seed, 1]).uniform(size=cells)
    p_low, p_high = TRUE["stuck_low"][0], TRUE["stuck_high"][0]
    return np.where(u < p_low, 1, np.where(u < p_low + p_high, 2, 0))


def write_csv(path: Path, rows: list[dict[str, str]]) -> Path:
    """Rows as a CSV with a header (the columns of the first row)."""
    with open(path, "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    return path


def pair_statistics(
    w: float,
    scale: float,
    window: tuple[float, float],
    offset: tuple[float, ...],
    sigma: tuple[float, ...],
) -> tuple[float, float]:
    """(mean, std) of the weight read back from a differential pair programmed with offset and
    Gaussian noise only: G+- = G_min + (G_max - G_min) max(+-w, 0) / scale, each programmed to
    G + mu(G) + sigma(G) N(0,1), w' = (G+' - G-') scale / (G_max - G_min)."""
    g_min, g_max = window
    per_us = scale / (g_max - g_min)
    g_pos = g_min + (g_max - g_min) * max(w, 0.0) / scale
    g_neg = g_min + (g_max - g_min) * max(-w, 0.0) / scale
    mean = (g_pos + polynomial(offset, g_pos) - g_neg - polynomial(offset, g_neg)) * per_us
    var = (polynomial(sigma, g_pos) ** 2 + polynomial(sigma, g_neg) ** 2) * per_us**2
    return mean, math.sqrt(var)


def drift_factor_moments(nu_mean: float, nu_std: float, ratio: float) -> tuple[float, float]:
    """(mean, std) of ratio^-nu for nu ~ N(nu_mean, nu_std): a lognormal with
    ln = -nu ln(ratio), so mean exp(m + v/2), var (exp(v) - 1) exp(2m + v)."""
    m = -nu_mean * math.log(ratio)
    v = (nu_std * math.log(ratio)) ** 2
    return math.exp(m + v / 2), math.sqrt((math.exp(v) - 1) * math.exp(2 * m + v))


if __name__ == "__main__":
    cells = int(sys.argv[2]) if len(sys.argv) > 2 else 20000
    write_csv(Path(sys.argv[1]), synthetic_measurements(cells, seed=0))

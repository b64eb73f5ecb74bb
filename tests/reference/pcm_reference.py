"""The PCM model's formulas written plainly in numpy (Nandakumar et al. 2019, with the numbers of
IBM aihwkit 1.1.0's PCMLikeNoiseModel, SinglePairConductanceConverter and
GlobalDriftCompensation), sharing no code with noiseproof.noise.pcm.

Units: conductances in uS, times in seconds. t counts from the end of programming and the
formulas use t + t0.
"""

from __future__ import annotations

import numpy as np

G_MAX = 25.0
T0 = 20.0
T_READ = 250e-9
PROG_COEFF = (0.26348, 1.9650, -1.1731)


def pair(w: np.ndarray, g_max: float = G_MAX) -> tuple[np.ndarray, np.ndarray, float]:
    """(G+, G-, scale): G+- = g_max * max(+-w, 0) / max|W| (both 0 for an all-zero w)."""
    scale = float(np.abs(w).max())
    per = g_max / scale if scale > 0 else g_max
    return np.maximum(w, 0) * per, np.maximum(-w, 0) * per, scale


def unpair(g_pos: np.ndarray, g_neg: np.ndarray, scale: float, g_max: float = G_MAX):
    """w = (G+ - G-) * scale / g_max."""
    return (g_pos - g_neg) * scale / g_max


def programming_sigma(g: np.ndarray, g_max: float = G_MAX, coeff=PROG_COEFF, reference=25.0):
    """sigma_P(G) = (c0 + c1 G/g_max + c2 (G/g_max)^2) * g_max / reference, uS."""
    x = g / g_max
    return sum(c * x**i for i, c in enumerate(coeff)) * g_max / reference


def drift_mean_std(g: np.ndarray, g_max: float = G_MAX) -> tuple[np.ndarray, np.ndarray]:
    """mu = clip(-0.0155 ln g + 0.0244, 0.049, 0.1), s = clip(-0.0125 ln g - 0.0059, 0.008,
    0.045) with g = max(G/g_max, 1e-7)."""
    lg = np.log(np.maximum(np.abs(g / g_max), 1e-7))
    return np.clip(-0.0155 * lg + 0.0244, 0.049, 0.1), np.clip(-0.0125 * lg - 0.0059, 0.008, 0.045)


def read_q(g: np.ndarray, g_max: float = G_MAX) -> np.ndarray:
    """Q = min(0.2, 0.0088 / max((|G|/g_max)^0.65, 1e-3))."""
    return np.minimum(0.0088 / np.maximum((np.abs(g) / g_max) ** 0.65, 1e-3), 0.2)


def growth(t_inference: float, t0: float = T0, t_read: float = T_READ) -> float:
    """sqrt(ln((t + t0 + t_read) / (2 t_read)))."""
    return float(np.sqrt(np.log((t_inference + t0 + t_read) / (2 * t_read))))


def device(g_target, z_prog, z_nu, z_read, t_inference, g_max=G_MAX, t0=T0):
    """(G_P, G_t) of devices with targets g_target and N(0,1) draws z_*."""
    g_prog = np.maximum(g_target + programming_sigma(g_target, g_max) * z_prog, 0.0)
    mu, s = drift_mean_std(g_target, g_max)
    nu = np.abs(mu + s * z_nu)
    g_drift = g_prog * ((t_inference + t0) / t0) ** (-nu)
    sigma = read_q(g_prog, g_max) * growth(t_inference, t0)
    return g_prog, np.maximum(g_drift + np.abs(g_drift) * sigma * z_read, 0.0)


def chip(
    w: np.ndarray, z: np.ndarray, t_inference: float, compensation: bool | str = False, rows=1
):
    """One array of weights (flattened row by row, `rows` outputs) read at t_inference; z:
    [3, 2, n] draws (z_prog, z_nu, z_read for G+ and G-). Global compensation (True or
    'global') scales the result by sum|W_P| / sum|W_t|; 'per_column' scales each of the `rows`
    outputs by the same ratio over its own entries, one output at a time."""
    g_pos, g_neg, scale = pair(w)
    prog_pos, now_pos = device(g_pos, z[0, 0], z[1, 0], z[2, 0], t_inference)
    prog_neg, now_neg = device(g_neg, z[0, 1], z[1, 1], z[2, 1], t_inference)
    now = unpair(now_pos, now_neg, scale)
    programmed = unpair(prog_pos, prog_neg, scale)
    if compensation in (True, "global"):
        reference = np.abs(programmed).sum()
        current = np.abs(now).sum()
        now = now * (reference / current if current > 0 else 1.0)
    if compensation == "per_column":
        per_row = len(w) // rows
        for j in range(rows):
            part = slice(j * per_row, (j + 1) * per_row)
            reference, current = np.abs(programmed[part]).sum(), np.abs(now[part]).sum()
            now[part] = now[part] * (reference / current if current > 0 else 1.0)
    return now


def perturbations(w: np.ndarray, t_inference: float, chips: int, seed: int) -> np.ndarray:
    """[chips, n] samples of w' - w for independent chips (numpy's own generator)."""
    rng = np.random.default_rng(seed)
    return np.stack(
        [chip(w, rng.standard_normal((3, 2, w.size)), t_inference) - w for _ in range(chips)]
    )

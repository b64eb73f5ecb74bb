"""Element-by-element numpy re-implementations of noise models, written from their formulas.

Slow on purpose: plain Python loops over elements, float64, and a seeded numpy Generator where
the model is random, so they share no code (and no random stream) with the library.
"""

from __future__ import annotations

import numpy as np


def quantize_grid(top: float, levels: int) -> np.ndarray:
    """The `levels` grid points -top + k * 2 top / (levels - 1), k = 0..levels-1 (float64)."""
    step = 2.0 * top / (levels - 1)
    return np.array([-top + k * step for k in range(levels)])


def quantize(weights: np.ndarray, levels: int) -> np.ndarray:
    """Each weight replaced by its nearest grid point (brute force over the whole grid).

    top = max|W| of the array; an all-zero array stays zero.
    """
    flat = np.asarray(weights, dtype=np.float64).reshape(-1)
    top = max((abs(float(v)) for v in flat), default=0.0)
    if top == 0.0:
        return np.zeros_like(np.asarray(weights, dtype=np.float64))
    grid = quantize_grid(top, levels)
    out = np.empty_like(flat)
    for i, value in enumerate(flat):
        best = 0
        for k in range(1, levels):
            if abs(grid[k] - value) < abs(grid[best] - value):
                best = k
        out[i] = grid[best]
    return out.reshape(np.shape(weights))


def quantize_tie_distance(weights: np.ndarray, levels: int) -> np.ndarray:
    """Per weight, |distance to nearest grid point - distance to second nearest| / step.

    Near 0 means the weight sits on a midpoint, where either neighbour is a correct answer.
    """
    flat = np.asarray(weights, dtype=np.float64).reshape(-1)
    top = float(np.max(np.abs(flat)))
    grid = quantize_grid(top, levels)
    step = 2.0 * top / (levels - 1)
    out = np.empty_like(flat)
    for i, value in enumerate(flat):
        distances = sorted(abs(g - value) for g in grid)
        out[i] = (distances[1] - distances[0]) / step
    return out.reshape(np.shape(weights))


STUCK_HEALTHY, STUCK_ZERO, STUCK_PLUS, STUCK_MINUS = 0, 1, 2, 3


def stuck_at(
    weights: np.ndarray, p: float, high_share: float, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """Stuck-at faults, one element at a time: (perturbed weights, category of each element).

    Each element is faulty with probability p; a faulty one is stuck at +-max|W| (sign + or -
    with probability 1/2 each) with probability `high_share`, else at 0. Categories:
    STUCK_HEALTHY, STUCK_ZERO, STUCK_PLUS, STUCK_MINUS.
    """
    flat = np.asarray(weights, dtype=np.float64).reshape(-1)
    top = max(abs(float(v)) for v in flat)
    out = flat.copy()
    category = np.zeros(flat.shape, dtype=np.int64)
    for i in range(len(flat)):
        if rng.random() >= p:
            continue
        if rng.random() < high_share:
            if rng.random() < 0.5:
                out[i], category[i] = top, STUCK_PLUS
            else:
                out[i], category[i] = -top, STUCK_MINUS
        else:
            out[i], category[i] = 0.0, STUCK_ZERO
    return out.reshape(np.shape(weights)), category.reshape(np.shape(weights))

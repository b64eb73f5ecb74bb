"""Spike rates and membrane traces by hand, for consistency's spiking features.

Plain Python floats and loops over time steps and neurons, written from the equations (not from
the library's or snntorch's tensors), for one example. A snntorch `Leaky` layer (reset by
subtraction, snntorch's default delayed reset; Heaviside spike H(u) = 1 if u > 0):

  r_j(t) = H(v_j(t-1) - threshold)                      (reset from the previous membrane)
  v_j(t) = beta v_j(t-1) + I_j(t) - r_j(t) threshold
  z_j(t) = H(v_j(t) - threshold)

The spike rate of neuron j is (1/T) sum_t z_j(t) (Hou et al. 2024's feature, read as the rate
code of a spiking layer); its membrane trace is [v_j(1), ..., v_j(T)].
"""

from __future__ import annotations


def linear(weight: list[list[float]], bias: list[float], x: list[float]) -> list[float]:
    """W x + b for one input vector."""
    rows = zip(weight, bias, strict=True)
    return [sum(w * xi for w, xi in zip(row, x, strict=True)) + b for row, b in rows]


def leaky_layer(
    currents: list[list[float]], beta: float, threshold: float
) -> tuple[list[list[float]], list[list[float]]]:
    """(spikes z[t][j], membranes v[t][j]) of a snntorch Leaky layer driven by I[t][j], from
    rest."""
    v = [0.0] * len(currents[0])
    spikes, membranes = [], []
    for current in currents:
        z = []
        for j, i_j in enumerate(current):
            reset = 1.0 if v[j] - threshold > 0 else 0.0
            v[j] = beta * v[j] + i_j - reset * threshold
            z.append(1.0 if v[j] - threshold > 0 else 0.0)
        spikes.append(z)
        membranes.append(list(v))
    return spikes, membranes


def spike_rates(raster: list[list[float]]) -> list[float]:
    """Per neuron, the mean over the T steps of raster[t][j]."""
    return [sum(step[j] for step in raster) / len(raster) for j in range(len(raster[0]))]


def mean_squared_error(a: list[list[float]], b: list[list[float]]) -> float:
    """Mean over every element of (a - b)^2."""
    pairs = [
        (u, w) for row_a, row_b in zip(a, b, strict=True) for u, w in zip(row_a, row_b, strict=True)
    ]
    return sum((u - w) ** 2 for u, w in pairs) / len(pairs)

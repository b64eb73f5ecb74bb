"""Neuron-by-neuron re-implementation of the LSNN forward (Bellec et al. 2018, ALIF cell).

Plain Python floats and loops over time steps, neurons and synapses, written from the
equations (not from the library's tensors), for one example:

  alpha = exp(-dt / tau_mem_j), rho = exp(-dt / tau_adapt_j)
  a_j(t) = rho a_j(t-1) + (1 - rho) z_j(t-1)
  A_j(t) = threshold_j + adaptation_j a_j(t)
  I_j(t) = sum_i W_in[j][i] x_i(t) + sum_{k != j} W_rec[j][k] z_k(t-1)
  v_j(t) = alpha v_j(t-1) + (1 - alpha) I_j(t) - A_j(t) z_j(t-1)
  z_j(t) = 1 if (v_j(t) - A_j(t)) / A_j(t) > 0 else 0
  o_c(t) = kappa o_c(t-1) + (1 - kappa) (sum_j W_out[c][j] z_j(t) + b_c), kappa = exp(-dt/tau_out_c)
  logit_c = mean_t o_c(t)
"""

from __future__ import annotations

import math


def lsnn_logits(
    x: list[list[float]],
    w_in: list[list[float]],
    w_rec: list[list[float]],
    w_out: list[list[float]],
    b_out: list[float],
    neurons: dict[str, list[float]],
    tau_out: list[float],
    dt: float = 1.0,
) -> tuple[list[float], list[list[float]]]:
    """(logits, spikes per step) of one example x [T][features]; `neurons` holds per-neuron
    lists 'tau_mem', 'tau_adapt', 'threshold', 'adaptation'."""
    hidden, classes = len(w_in), len(w_out)
    v, a, z = [0.0] * hidden, [0.0] * hidden, [0.0] * hidden
    o, total, raster = [0.0] * classes, [0.0] * classes, []
    for x_t in x:
        new_z = []
        for j in range(hidden):
            alpha = math.exp(-dt / neurons["tau_mem"][j])
            rho = math.exp(-dt / neurons["tau_adapt"][j])
            a[j] = rho * a[j] + (1 - rho) * z[j]
            big_a = neurons["threshold"][j] + neurons["adaptation"][j] * a[j]
            current = sum(w_in[j][i] * x_t[i] for i in range(len(x_t)))
            current += sum(w_rec[j][k] * z[k] for k in range(hidden) if k != j)
            v[j] = alpha * v[j] + (1 - alpha) * current - big_a * z[j]
            new_z.append(1.0 if (v[j] - big_a) / big_a > 0 else 0.0)
        z = new_z
        raster.append(list(z))
        for c in range(classes):
            kappa = math.exp(-dt / tau_out[c])
            drive = sum(w_out[c][j] * z[j] for j in range(hidden)) + b_out[c]
            o[c] = kappa * o[c] + (1 - kappa) * drive
            total[c] += o[c]
    return [t / len(x) for t in total], raster

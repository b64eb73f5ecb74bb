"""The analog MVM of noiseproof.analog written out for one Linear layer, vector by vector."""

from __future__ import annotations

import torch
from torch import Tensor


def quantized(v: float, bits: int, bound: float) -> float:
    """Nearest of the 2^bits - 1 levels k * 2 bound / (2^bits - 2) to clip(v, -bound, bound)."""
    step = 2 * bound / (2**bits - 2)
    v = min(max(v, -bound), bound)
    return round(v / step) * step


def linear_mvm(
    weight: Tensor, bias: Tensor, x: Tensor, dac_bits: int, adc_bits: int, adc_range: float
) -> Tensor:
    """y[i, o] = alpha_i w Q_adc(sum_j W[o, j] / w * Q_dac(x[i, j] / alpha_i)) + b[o], with
    alpha_i = max_j |x[i, j]| and w = max |W|, in plain Python loops (no output noise)."""
    weight, bias, x = weight.detach(), bias.detach(), x.detach()
    w = float(weight.abs().max())
    out = torch.empty(x.shape[0], weight.shape[0], dtype=torch.float64)
    for i in range(x.shape[0]):
        alpha = float(x[i].abs().max()) or 1.0
        xq = [quantized(float(v) / alpha, dac_bits, 1.0) for v in x[i]]
        for o in range(weight.shape[0]):
            acc = sum(float(weight[o, j]) / w * xq[j] for j in range(weight.shape[1]))
            out[i, o] = alpha * w * quantized(acc, adc_bits, adc_range) + float(bias[o])
    return out

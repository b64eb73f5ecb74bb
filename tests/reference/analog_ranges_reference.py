"""Input/ADC ranges and bit slicing of noiseproof.analog, .analog_ranges and .noise.slicing
written out element by element in plain Python (floats and integers, no torch ops)."""

from __future__ import annotations

import math

import torch
from torch import Tensor

from reference.analog_reference import quantized


def percentile(values: list[float], p: float) -> float:
    """Linear interpolation between order statistics at rank 1 + (n - 1) p / 100."""
    ordered = sorted(values)
    position = (len(ordered) - 1) * p / 100
    low, high = math.floor(position), math.ceil(position)
    return ordered[low] + (position - low) * (ordered[high] - ordered[low])


def ranged_linear(
    weight: Tensor,
    bias: Tensor,
    x: Tensor,
    r: float,
    dac_bits: int | None,
    adc_bits: int | None,
    adc_ranges: list[float],
) -> Tensor:
    """y[i, o] = r w Q_adc(sum_j W[o, j] / w Q_dac(clip(x[i, j], -r, r) / r); R_o) + b[o]
    (one input range r, an ADC range per output column o; None: no converter)."""
    weight, bias, x = weight.detach().tolist(), bias.detach().tolist(), x.detach().tolist()
    w = max(abs(v) for row in weight for v in row)
    out = []
    for row in x:
        xq = [min(max(v, -r), r) / r for v in row]
        xq = [quantized(v, dac_bits, 1.0) if dac_bits else v for v in xq]
        ys = []
        for o, wrow in enumerate(weight):
            acc = sum(wv / w * xv for wv, xv in zip(wrow, xq, strict=True))
            acc = quantized(acc, adc_bits, adc_ranges[o]) if adc_bits else acc
            ys.append(r * w * acc + bias[o])
        out.append(ys)
    return torch.tensor(out, dtype=torch.float64)


def ranged_conv2d(
    weight: Tensor,
    bias: Tensor,
    x: Tensor,
    r: float,
    dac_bits: int,
    adc_bits: int,
    adc_ranges: list[float],
) -> Tensor:
    """A stride-1, unpadded Conv2d under the same pipeline, patch by patch: every output
    (n, o, i, j) is one MVM of the patch x[n, :, i:i+kh, j:j+kw] with kernel o."""
    out_c, in_c, kh, kw = weight.shape
    n, _, h, wd = x.shape
    w = float(weight.detach().abs().max())
    kern, bias = weight.detach().tolist(), bias.detach()
    xs = x.detach().tolist()
    out = torch.empty(n, out_c, h - kh + 1, wd - kw + 1, dtype=torch.float64)
    for e in range(n):
        xq = [
            [[quantized(min(max(v, -r), r) / r, dac_bits, 1.0) for v in row] for row in chan]
            for chan in xs[e]
        ]
        for o in range(out_c):
            for i in range(h - kh + 1):
                for j in range(wd - kw + 1):
                    acc = sum(
                        kern[o][c][a][b] / w * xq[c][i + a][j + b]
                        for c in range(in_c)
                        for a in range(kh)
                        for b in range(kw)
                    )
                    acc = quantized(acc, adc_bits, adc_ranges[o])
                    out[e, o, i, j] = r * w * acc + float(bias[o])
    return out


def sliced_value(w: float, scale: float, slices: int, bits: int) -> tuple[list[int], float]:
    """(digits d_s most significant first, the n-bit value sign(w) scale q / (2^n - 1)) of one
    weight, with the integer q = round(|w| / scale (2^n - 1)) split by Python's divmod."""
    n = slices * bits
    q = round(abs(w) / scale * (2**n - 1))
    digits = []
    rest = q
    for _ in range(slices):
        rest, digit = divmod(rest, 2**bits)
        digits.append(digit)
    digits.reverse()
    value = math.copysign(scale * q / (2**n - 1), w) if q else 0.0
    return digits, value


def range_clip_gradients(
    x: list[float], r: float, grad: list[float], decay: float, min_unclipped: float
) -> tuple[list[float], float]:
    """aihwkit's InputRangeForward backward, element by element: dL/dx = grad inside (-r, r),
    0 outside; dL/dr = r (sum_{x >= r} min(g, 0) - sum_{x <= -r} max(g, 0)) + decay r when the
    share of |x| < r is above min_unclipped."""
    grad_x = [g if -r < v < r else 0.0 for v, g in zip(x, grad, strict=True)]
    upper = sum(min(g, 0.0) for v, g in zip(x, grad, strict=True) if v >= r)
    lower = sum(max(g, 0.0) for v, g in zip(x, grad, strict=True) if v <= -r)
    grad_r = r * (upper - lower)
    if sum(abs(v) < r for v in x) / len(x) > min_unclipped:
        grad_r += decay * r
    return grad_x, grad_r


def compensated(now: list[list[float]], then: list[list[float]], per_column: bool) -> list:
    """Drift compensation of one weight matrix: every entry times sum|then| / sum|now| over the
    matrix (global) or over its row (per_column)."""
    if per_column:
        return [
            [v * sum(map(abs, t)) / sum(map(abs, row)) for v in row]
            for row, t in zip(now, then, strict=True)
        ]
    alpha = sum(abs(v) for t in then for v in t) / sum(abs(v) for row in now for v in row)
    return [[v * alpha for v in row] for row in now]

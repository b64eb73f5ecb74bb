"""Bit slicing: each weight stored on `slices` device pairs of `bits` bits each, every pair
programmed (and perturbed by the noise model) on its own, recombined digitally.

After ISAAC's weight slicing (Shafiee et al., ISCA 2016: a 16-bit weight on 8 cells of 2 bits,
the column outputs shifted and added) and CrossSim's / MemTorch's bit-sliced cores. For a
tensor W with M = max|W| and n = slices x bits:

    q   = round(|W| / M (2^n - 1))                     (an integer in [0, 2^n - 1])
    d_s = floor(q / 2^(bits (slices - 1 - s))) mod 2^bits,   s = 0 (most significant) ...
    W_s = sign(W) M d_s / (2^bits - 1)                  (slice s at the full weight scale)
    W   = sum_s c_s W_s,   c_s = 2^(-bits s) c_0,   c_0 = (2^bits - 1) 2^(bits (slices - 1))
                                                          / (2^n - 1)

so that sum_s c_s W_s = sign(W) M q / (2^n - 1), W quantised to n bits. The sign stays on
each slice's differential pair (every slice of a negative weight is negative). Each slice is a
full copy of the on-chip tensors with its own conductance pairs: the noise model perturbs the
slices independently (its own draw per slice, its own max|W_s| = M: the largest weight has
every digit full), and a chip's weights are sum_s c_s noisy(W_s). With independent noise of
variance v_s on slice s the recombined weight's variance is sum_s c_s^2 v_s: the most
significant slice dominates (c_0 close to 1), the others add 2^(-2 bits s) of theirs.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import cast

import torch
from torch import Tensor

from noiseproof.chip import Params
from noiseproof.noise.base import NoiseModel


def significances(slices: int, bits: int) -> list[float]:
    """c_s of every slice, most significant first (module docstring)."""
    c0 = (2**bits - 1) * 2 ** (bits * (slices - 1)) / (2 ** (slices * bits) - 1)
    return [c0 * 2.0 ** (-bits * s) for s in range(slices)]


def slice_tensor(tensor: Tensor, slices: int, bits: int) -> list[Tensor]:
    """The slices W_s of one tensor, most significant first, each in its dtype (module
    docstring); an all-zero tensor gives all-zero slices."""
    w = tensor.detach().to(torch.float64)
    scale = w.abs().max() if w.numel() else w.new_zeros(())
    safe = torch.where(scale > 0, scale, torch.ones_like(scale))
    q = torch.round(w.abs() / safe * (2 ** (slices * bits) - 1))
    parts = []
    for s in range(slices):
        digit = torch.remainder(torch.floor(q / 2 ** (bits * (slices - 1 - s))), 2**bits)
        parts.append((torch.sign(w) * scale * digit / (2**bits - 1)).to(tensor.dtype))
    return parts


def recombine(parts: list[Tensor], slices: int, bits: int) -> Tensor:
    """sum_s c_s W_s, summed in float64, in the slices' dtype."""
    weighted = (
        c * p.to(torch.float64) for c, p in zip(significances(slices, bits), parts, strict=True)
    )
    total = cast(Tensor, sum(weighted))  # parts is not empty: a tensor, never the start value 0
    return total.to(parts[0].dtype)


def sliced_sample(
    noise: NoiseModel,
    clean: Params,
    slices: int,
    bits: int,
    generator_of: Callable[[int], torch.Generator],
) -> Params:
    """One chip of bit-sliced weights: every on-chip tensor cut into slices, slice s perturbed
    by `noise.sample` with `generator_of(s)` (a draw of its own), recombined digitally."""
    pieces = {name: slice_tensor(t, slices, bits) for name, t in clean.items()}
    noisy = [
        noise.sample({name: parts[s] for name, parts in pieces.items()}, generator_of(s))
        for s in range(slices)
    ]
    return {name: recombine([n[name] for n in noisy], slices, bits) for name in clean}

"""Per-channel views of layer outputs, the least-squares fit of a gain and an offset per
channel, and the digital per-column correction y -> g * y + b after chosen layers.

Channels are an MVM layer's outputs (the crossbar's columns): the last axis of a Linear (or
Hugging Face Conv1D) output, axis 1 of a convolution's; a BatchNorm's or GroupNorm's axis 1;
every element of a LayerNorm's `normalized_shape`. The fit pools every other axis (examples,
positions, time steps).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager

import torch
from torch import Tensor, nn

from noiseproof.analog import CONV_LAYERS

CHANNEL_FIRST = (*CONV_LAYERS, nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d, nn.GroupNorm)

TINY = 1e-12
"""A channel whose chip output varies less than this (variance, float64) keeps gain 1."""


def per_channel(module: nn.Module, out: Tensor) -> Tensor:
    """`out` as a float64 matrix [positions, channels] (module docstring)."""
    if isinstance(module, CHANNEL_FIRST):
        return out.detach().movedim(1, -1).reshape(-1, out.shape[1]).double()
    if isinstance(module, nn.LayerNorm):
        return out.detach().reshape(-1, math.prod(module.normalized_shape)).double()
    return out.detach().reshape(-1, out.shape[-1]).double()


def shaped(module: nn.Module, values: Tensor, out: Tensor) -> Tensor:
    """Per-channel `values` [C] shaped to broadcast onto the module's output `out`."""
    if isinstance(module, CHANNEL_FIRST):
        return values.view(-1, *([1] * (out.dim() - 2)))
    if isinstance(module, nn.LayerNorm):
        return values.view(module.normalized_shape)
    return values


def fit_columns(chip: Tensor, clean: Tensor, gain: bool, offset: bool) -> tuple[Tensor, Tensor]:
    """(g, b) per channel minimising sum_n (g y_n + b - t_n)^2 over the rows of `chip` (y,
    [positions, C]) and `clean` (t, the same shape): ordinary least squares per channel,
    g = cov(y, t) / var(y), b = mean(t) - g mean(y) (with gain and offset); g = <y t> / <y y>,
    b = 0 (gain only); g = 1, b = mean(t) - mean(y) (offset only: the bias correction of Nagel
    et al. 2019, "Data-free quantization through weight equalization and bias correction",
    eq. 8, with the expectation measured on data). A constant channel keeps g = 1. float64."""
    if chip.shape != clean.shape or chip.dim() != 2:
        raise ValueError(
            f"chip and clean must be [positions, C] alike, got {chip.shape}, {clean.shape}"
        )
    ones = torch.ones(chip.shape[1], dtype=torch.float64, device=chip.device)
    if not gain:
        return ones, clean.mean(0) - chip.mean(0)
    if not offset:
        power = (chip * chip).mean(0)
        g = torch.where(power > TINY, (chip * clean).mean(0) / power.clamp_min(TINY), ones)
        return g, torch.zeros_like(g)
    y = chip - chip.mean(0)
    spread = (y * y).mean(0)
    g = torch.where(
        spread > TINY, (y * (clean - clean.mean(0))).mean(0) / spread.clamp_min(TINY), ones
    )
    return g, clean.mean(0) - g * chip.mean(0)


@contextmanager
def corrected(model: nn.Module, columns: Mapping[str, tuple[Tensor, Tensor]]) -> Iterator[None]:
    """Within the block, the output y of every layer named in `columns` (name -> (gain [C],
    offset [C])) becomes g * y + b per channel: the digital gain and offset after the read-out.
    The hooks are added last, so they act after any already installed (an analog forward's
    ADC); they are removed on exit."""
    modules = dict(model.named_modules())
    missing = [name for name in columns if name not in modules]
    if missing:
        raise ValueError(f"columns: the model has no layer named {missing[0]!r}")

    def hook(name: str) -> Callable[[nn.Module, tuple, Tensor], Tensor]:
        def correct(module: nn.Module, args: tuple, out: Tensor) -> Tensor:
            g, b = columns[name]
            return out * shaped(module, g, out) + shaped(module, b, out)

        return correct

    handles = [modules[name].register_forward_hook(hook(name)) for name in columns]
    try:
        yield
    finally:
        for handle in handles:
            handle.remove()

"""A literal reference of calibration after programming, for plain Sequential networks of
Linear / ReLU / BatchNorm1d layers: per column, numpy's least squares on [y, 1]; layer after
layer, each fitted on the chip's activations with the earlier layers corrected."""

from __future__ import annotations

import numpy as np
import torch
from torch import nn


def column_fit(chip: np.ndarray, clean: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(g, b) per column c minimising ||g y_c + b - t_c||^2 (np.linalg.lstsq on [y_c, 1])."""
    gains, offsets = [], []
    for c in range(chip.shape[1]):
        design = np.stack([chip[:, c], np.ones(len(chip))], axis=1)
        (g, b), *_ = np.linalg.lstsq(design, clean[:, c], rcond=None)
        gains.append(g)
        offsets.append(b)
    return np.array(gains), np.array(offsets)


def sequential_fit(
    net: nn.Sequential, clean: dict[str, torch.Tensor], chip: dict[str, torch.Tensor], x
) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Gain and offset per column after every Linear of `net` (eval mode), fitted layer by
    layer: the clean activations from `clean`'s weights, the chip's from `chip`'s with the
    corrections fitted so far applied."""
    fits = {}
    a_clean = x.double().numpy()
    a_chip = x.double().numpy()
    for i, layer in enumerate(net):
        if isinstance(layer, nn.Linear):
            w, b = (clean[f"{i}.weight"].double().numpy(), clean[f"{i}.bias"].double().numpy())
            wc, bc = (chip[f"{i}.weight"].double().numpy(), chip[f"{i}.bias"].double().numpy())
            a_clean = a_clean @ w.T + b
            y = a_chip @ wc.T + bc
            g, off = column_fit(y, a_clean)
            fits[str(i)] = (g, off)
            a_chip = y * g + off
        elif isinstance(layer, nn.ReLU):
            a_clean, a_chip = np.maximum(a_clean, 0), np.maximum(a_chip, 0)
        elif isinstance(layer, nn.BatchNorm1d):
            mean = layer.running_mean.double().numpy()
            scale = layer.weight.detach().double().numpy() / np.sqrt(
                layer.running_var.double().numpy() + layer.eps
            )
            shift = layer.bias.detach().double().numpy()
            a_clean = (a_clean - mean) * scale + shift
            a_chip = (a_chip - mean) * scale + shift
        else:
            raise TypeError(f"reference: no {type(layer).__name__}")
    return fits

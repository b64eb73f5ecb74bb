"""Rebuild a trained model from its checkpoint: the module its metadata names, its weights.

Below the experiments and every command (compare's grid, attack, landscape, export, cost,
correct, ...), which all restore checkpoints the same way.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from noiseproof.calibration.model import Calibrated
from noiseproof.devices import resolve_device
from noiseproof.errors import NoiseproofError
from noiseproof.methods import methods
from noiseproof.models import models


def model_from_checkpoint(
    state: dict[str, torch.Tensor],
    meta: dict[str, Any],
    device: torch.device | str | None = None,
) -> nn.Module:
    """Rebuild the module a checkpoint describes and load its weights (strictly), on `device`
    (None: the CPU, where `load_checkpoint` maps every tensor, whatever device wrote it).

    When training's method finished with a record (meta 'finish'), that method (meta 'method',
    from the registry) rebuilds what it deployed around the model (`Method.restore`) first;
    a calibrated chip (meta 'calibration' with its 'layers') gets its per-column corrections
    (noiseproof.calibration.model.Calibrated).
    """
    input_shape = tuple(meta["input_shape"])
    model = models.create(meta["model"]).create(input_shape, meta["num_outputs"])
    if meta.get("finish"):
        method = methods.create(meta["method"])
        model = method.restore(model, meta["finish"], input_shape=input_shape)
    layers = (meta.get("calibration") or {}).get("layers")
    if layers:  # a calibrated chip (noiseproof calibrate): its per-column corrections
        model = Calibrated(model, layers)
    try:
        model.load_state_dict(state)
    except RuntimeError as error:
        first = str(error).strip().splitlines()[0]
        raise NoiseproofError(
            f"checkpoint weights do not fit model {meta['model']}: {first}"
        ) from None
    model.eval()
    return model if device is None else model.to(resolve_device(device))

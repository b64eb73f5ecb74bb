"""Which layers can carry compensation: the on-chip Linear/ConvNd layers of a model."""

from __future__ import annotations

from torch import nn

from noiseproof.chip import ChipSelection, chip_params
from noiseproof.errors import NoiseproofError

COMPENSABLE = (nn.Linear, nn.Conv1d, nn.Conv2d, nn.Conv3d)


def candidate_layers(model: nn.Module, selection: ChipSelection | None) -> list[str]:
    """Names of the on-chip Linear/ConvNd layers, in forward-registration order."""
    modules = dict(model.named_modules())
    names = []
    for param in chip_params(model, selection):
        owner = param.rpartition(".")[0]
        if isinstance(modules.get(owner), COMPENSABLE):
            names.append(owner)
    return list(dict.fromkeys(names))


def check_layers(model: nn.Module, layers: list[str]) -> None:
    """NoiseproofError unless every name is a Linear/ConvNd layer of `model`."""
    modules = dict(model.named_modules())
    for name in layers:
        if not isinstance(modules.get(name), COMPENSABLE):
            known = ", ".join(candidate_layers(model, None))
            raise NoiseproofError(
                f"compensation: no layer named {name!r} in the model (Linear/Conv layers: {known})"
            )

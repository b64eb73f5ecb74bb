"""Which parameters live on the chip, and the forward pass through a parameter dict.

The user's nn.Module is never modified: a clean, noisy or attacked network is the same module
called with another `{name: tensor}` dict through `torch.func.functional_call`.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Mapping

import torch
from pydantic import BaseModel, ConfigDict, Field
from torch import Tensor, nn

from noiseproof.errors import NoiseproofError

Params = dict[str, Tensor]


class ChipSelection(BaseModel):
    """Selection rule for on-chip parameters.

    A parameter is on the chip when its module's class name is in `layers` and its own name
    (the last part, e.g. 'weight') is in `kinds`, or when its full name matches an `include`
    glob (any parameter of any module, e.g. '*.tau_mem'); names matching `exclude` are removed.
    BatchNorm statistics are buffers, not parameters, and so stay digital.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    layers: tuple[str, ...] = Field(
        ("Linear", "Conv1d", "Conv2d", "Conv3d"), description="module class names on the chip"
    )
    kinds: tuple[str, ...] = Field(
        ("weight", "bias"), description="parameter names in those layers"
    )
    include: tuple[str, ...] = Field((), description="extra full-name globs, any module")
    exclude: tuple[str, ...] = Field((), description="full-name globs removed from the selection")

    def names(self, model: nn.Module) -> list[str]:
        """Full names of the selected parameters of `model`, in registration order."""
        selected = []
        for module_name, module in model.named_modules():
            for leaf, _ in module.named_parameters(recurse=False):
                full = f"{module_name}.{leaf}" if module_name else leaf
                by_layer = type(module).__name__ in self.layers and leaf in self.kinds
                by_glob = any(fnmatch.fnmatchcase(full, pat) for pat in self.include)
                if (by_layer or by_glob) and not any(
                    fnmatch.fnmatchcase(full, pat) for pat in self.exclude
                ):
                    selected.append(full)
        return selected


def chip_params(
    model: nn.Module, selection: ChipSelection | None = None
) -> dict[str, nn.Parameter]:
    """The selected parameters themselves (not copies): gradients reach the model through them.

    A wrapper module may adapt the selection to its own parameter names by a method
    `chip_selection(selection)` (noiseproof.correctnet.Compensated keeps its digital
    compensation off the chip that way).
    """
    adapt = getattr(model, "chip_selection", None)
    selection = adapt(selection) if callable(adapt) else selection or ChipSelection()
    own = dict(model.named_parameters())
    names = selection.names(model)
    if not names:
        raise NoiseproofError(
            f"the chip selection matches no parameter of {type(model).__name__} "
            f"(layers={list(selection.layers)}, include={list(selection.include)})"
        )
    return {name: own[name] for name in names}


def forward(model: nn.Module, params: Mapping[str, Tensor], x: Tensor) -> Tensor:
    """`model(x)` with the tensors in `params` standing in for those parameters (others as is)."""
    return torch.func.functional_call(model, dict(params), (x,))


def detached(params: Mapping[str, Tensor]) -> Params:
    """A dict of the same tensors, detached from autograd (no copy of the data)."""
    return {name: tensor.detach() for name, tensor in params.items()}


def straight_through(clean: Mapping[str, Tensor], perturbed: Mapping[str, Tensor]) -> Params:
    """clean + stopgrad(perturbed - clean): perturbed values forward, clean gradients backward."""
    return {name: clean[name] + (perturbed[name] - clean[name]).detach() for name in clean}

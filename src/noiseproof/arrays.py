"""Which on-chip tensors share a crossbar array: a layer's weight matrix and its bias.

One rule for every crossbar model (noiseproof.noise.pcm, noiseproof.noise.crossbar) and for the
export (noiseproof.export.layout). A layer's bias is the 1-D tensor `X.bias` next to the matrix
`X.weight` (a recurrent layer's `X.bias_ih_l0` next to `X.weight_ih_l0`), with one value per
output: len(bias) = weight.shape[0], the weight having at least two dimensions (a 1-D weight,
e.g. a normalisation's scale, is no matrix). Placed on the chip, the bias is the array's extra
row driven by a constant input of 1, so that x A[:-1] + 1 * A[-1] = W x + b (aihwkit's analog
bias; Drolet et al. 2023 map it with the layer's scale); kept digital it is added after the
read-out (aihwkit's default digital bias).

Placements (`Placement`): "digital": every bias (a tensor named `bias` or `bias_*`) is left off
the arrays; "joined": a layer's bias joins its weight's array, any other tensor is an array of
its own; "separate": every tensor is an array of its own.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Literal

from torch import Tensor

from noiseproof.chip import is_bias

Placement = Literal["digital", "joined", "separate"]
PLACEMENTS = ("digital", "joined", "separate")


def bias_name(weight: str) -> str | None:
    """The name of the bias of weight `weight`: 'X.weight' -> 'X.bias', 'X.weight_ih_l0' ->
    'X.bias_ih_l0'; None for a tensor not named `weight` or `weight_*`."""
    owner, dot, leaf = weight.rpartition(".")
    if leaf != "weight" and not leaf.startswith("weight_"):
        return None
    return f"{owner}{dot}{leaf.replace('weight', 'bias', 1)}"


def layer_biases(
    weights: Mapping[str, Tensor], biases: Mapping[str, Tensor] | None = None
) -> dict[str, str]:
    """weight name -> the name of its layer's bias, for every weight matrix of `weights` whose
    bias is in `biases` (default: `weights` itself) with one value per output (module
    docstring); in the order of `weights`."""
    biases = weights if biases is None else biases
    pairs = {}
    for name, weight in weights.items():
        bias = bias_name(name)
        if bias is None or weight.dim() < 2 or not weight.numel() or bias not in biases:
            continue
        if biases[bias].dim() == 1 and biases[bias].numel() == weight.shape[0]:
            pairs[name] = bias
    return pairs


def array_groups(params: Mapping[str, Tensor], placement: Placement) -> list[tuple[str, ...]]:
    """Names of the tensors programmed together, one tuple per array, in the order of `params`
    (a joined bias after its weight, in the weight's place); empty tensors are on no array."""
    if placement not in PLACEMENTS:
        raise ValueError(f"placement must be one of {list(PLACEMENTS)}, got {placement!r}")
    joined = layer_biases(params) if placement == "joined" else {}
    attached = set(joined.values())
    groups: list[tuple[str, ...]] = []
    for name, tensor in params.items():
        if not tensor.numel() or name in attached or (placement == "digital" and is_bias(name)):
            continue
        groups.append((name, joined[name]) if name in joined else (name,))
    return groups

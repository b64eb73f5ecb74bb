"""Which on-chip tensors become which crossbar array, laid out as the crossbar computes.

A weight of shape [out, *rest] is unrolled to the matrix weight.reshape(out, -1), row-major: a
Conv2d kernel [out, c, kh, kw] becomes (out, c*kh*kw), input index (ci*kh + i)*kw + j, the
usual im2col form of a convolution as a matrix product (Chellapilla et al. 2006). On the
crossbar the inputs drive the rows and the outputs are read on the columns, y = x A, as
noiseproof.noise.crossbar lays tensors out (after Drolet et al. 2023), so the array is
A = weight.reshape(out, -1).T, of shape (c*kh*kw, out).

A layer's bias (`X.bias` next to the matrix `X.weight`, `X.bias_ih_l0` next to
`X.weight_ih_l0`, one value per output: noiseproof.arrays) is either the array's extra last
row, driven by a constant input of 1, so that x A[:-1] + 1 * A[-1] = W x + b (bias "row"), or
kept digital and added after the read-out (bias "digital", as aihwkit's default
digital bias: then every on-chip tensor named `bias` or `bias_*` is). A bias outside the chip
selection is digital in any case. Any other on-chip tensor (in "row" mode a bias whose weight
is not its layer's array, e.g. a tied weight's second user; a 1-D or 0-d tensor selected by an
include glob) is an array of its own, tensor.reshape(n, -1).T: one row for a 1-D tensor.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal

import torch
from torch import Tensor, nn

from noiseproof.arrays import layer_biases
from noiseproof.chip import ChipSelection, chip_params, is_bias

BiasMode = Literal["row", "digital"]
BIAS_MODES = ("row", "digital")

ROW_REASON = "a layer's bias is its array's last row, driven by a constant input of 1"
DIGITAL_REASON = "kept digital (bias 'digital'): added to the outputs after the read-out"
OFF_SELECTION = "not in the chip selection"


@dataclass(frozen=True)
class Bias:
    """A layer's bias: its tensor name, where it lives ('row' or 'digital'), why, its values."""

    tensor: str
    handling: BiasMode
    reason: str
    values: Tensor


@dataclass(frozen=True)
class CrossbarArray:
    """One on-chip tensor, with its layer's bias, laid out on a crossbar.

    name: the tensor's full name; module, module_class: the module owning it; shape: the
    tensor's shape; matrix: the array A (rows = inputs, columns = outputs; the bias row last
    when the bias is a row), in the tensor's dtype; bias: the layer's bias, or None;
    groups: the module's `groups` (convolutions), or None.
    """

    name: str
    module: str
    module_class: str
    shape: tuple[int, ...]
    matrix: Tensor
    bias: Bias | None
    groups: int | None

    @property
    def unrolled_shape(self) -> tuple[int, int]:
        """(out, in*kh*kw...): the shape of tensor.reshape(out, -1) (0-d: (1, 1))."""
        if not self.shape:
            return 1, 1
        return self.shape[0], math.prod(self.shape[1:])

    @property
    def array_shape(self) -> tuple[int, int]:
        """(rows, cols) of `matrix` (inputs, outputs; the bias row included)."""
        return self.matrix.shape[0], self.matrix.shape[1]


def unroll(tensor: Tensor) -> Tensor:
    """tensor.reshape(out, -1), row-major (a 0-d tensor: (1, 1))."""
    return tensor.reshape(tensor.shape[0] if tensor.dim() else 1, -1)


def crossbar_arrays(
    model: nn.Module, selection: ChipSelection | None = None, bias: BiasMode = "row"
) -> tuple[list[CrossbarArray], dict[str, str]]:
    """The crossbar arrays of `model`'s on-chip tensors (`selection`, default the standard one)
    in selection order, and every other state_dict entry with the reason it is not programmed.
    """
    if bias not in BIAS_MODES:
        raise ValueError(f"bias must be one of {list(BIAS_MODES)}, got {bias!r}")
    params = chip_params(model, selection)
    own = dict(model.named_parameters())
    modules = dict(model.named_modules())
    layers = layer_biases(params, own)  # weight -> its layer's bias, on the chip or not
    attached = set(layers.values())
    arrays, off_chip = [], {}
    for name, tensor in params.items():
        if tensor.numel() == 0:
            off_chip[name] = "empty tensor"
        elif bias == "digital" and is_bias(name):
            off_chip[name] = DIGITAL_REASON
        elif name not in attached:  # an attached bias is its weight's array's row
            arrays.append(_array(name, tensor, layers.get(name), own, params, modules, bias))
            if arrays[-1].bias is not None and arrays[-1].bias.handling == "digital":
                off_chip[arrays[-1].bias.tensor] = arrays[-1].bias.reason
    off_chip.update(_others(model, params, off_chip))
    return arrays, off_chip


def _array(
    name: str,
    tensor: Tensor,
    bias_name: str | None,
    own: Mapping[str, Tensor],
    params: dict[str, Tensor],
    modules: dict[str, nn.Module],
    bias: BiasMode,
) -> CrossbarArray:
    """Tensor `name` as a crossbar array, with its layer's bias `bias_name` (if any)."""
    matrix, layer_bias = unroll(tensor.detach()).T, None
    if bias_name is not None:
        values = own[bias_name].detach()
        if bias_name in params and bias == "row":
            layer_bias = Bias(bias_name, "row", ROW_REASON, values)
            matrix = torch.cat([matrix, values.to(matrix.dtype).reshape(1, -1)])
        else:
            reason = DIGITAL_REASON if bias_name in params else OFF_SELECTION
            layer_bias = Bias(bias_name, "digital", reason, values)
    owner = name.rpartition(".")[0]
    module = modules[owner]
    return CrossbarArray(
        name=name,
        module=owner,
        module_class=type(module).__name__,
        shape=tuple(tensor.shape),
        matrix=matrix,
        bias=layer_bias,
        groups=getattr(module, "groups", None),
    )


def _others(model: nn.Module, params: dict[str, Tensor], known: dict[str, str]) -> dict[str, str]:
    """Every state_dict entry neither on the chip nor already listed: why it stays digital."""
    canonical: dict[int, str] = {}
    for name, tensor in [
        *model.named_parameters(remove_duplicate=False),
        *model.named_buffers(remove_duplicate=False),
    ]:
        canonical.setdefault(id(tensor), name)
    tensors = {
        **dict(model.named_buffers(remove_duplicate=False)),
        **dict(model.named_parameters(remove_duplicate=False)),
    }
    out = {}
    for name in model.state_dict():
        if name in params or name in known:
            continue
        first = canonical.get(id(tensors.get(name)), name)
        out[name] = f"the same tensor as {first}" if first != name else OFF_SELECTION
    return out

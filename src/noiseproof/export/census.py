"""What one inference asks of the crossbar tiles: a census of tiles, MVMs and conversions.

Every on-chip tensor is laid out as `noiseproof export` lays it (noiseproof.export.layout: a
Linear [out, in] as an in x out array, a Conv kernel unrolled to (c*kh*kw) x out, a bias on the
chip as an extra row driven by a constant 1) and cut into tiles of ROWS x COLS weight
positions, each a differential pair of devices (noiseproof.export.tiles). Hugging Face's Conv1D
stores its weight as [in, out] already: it is laid out as that in x out matrix.

One probe forward of a single example (batch 1: token ids 0 for a model that embeds tokens,
zeros otherwise; spiking models from rest) counts, with forward hooks, how often each layer
holding an on-chip weight runs and on how many input vectors:

- Linear (and Conv1D): one vector per row of its input (one per token for a sequence model);
- ConvNd: one vector per output position (the im2col patch of one output pixel); a convolution
  with `groups` g drives the rows of each group's patch in turn, so it is g activations per
  output position, each reading only that group's out/g columns;
- a recurrent layer (nn.RNN/LSTM/GRU): every weight_* once per time step of its input.

An activation of an array drives all its rows (the bias row included) in every tile its
columns touch: per touched tile one MVM, one DAC conversion per row driven, and one ADC
conversion per column read and weight slice (`slices` device pairs per weight position, each
read by the ADC and recombined digitally). The tiles of one activation are summed digitally:
(row tiles x slices - 1) additions per output, one more for a digital bias. Weight tensors
that no layer multiplies (an embedding's own lookups, a 1-D tensor on the chip, a bias that is
its own array) take tiles but no MVM.

FLOPs come from torch's counter (`torch.utils.flop_counter.FlopCounterMode`: matrix products,
convolutions, attention, its CPU kernel included: noiseproof.flops) over the same forward; the
analog MACs are the weight rows x columns read of every activation, which is what the counter
counts for those layers (a bias addition is not counted by it, nor is any element-wise
operation: activations, normalisation, softmax). Causal attention is counted in full, as
torch's formula does.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, cast

import torch
from torch import Tensor, nn

from noiseproof.chip import ChipSelection, hidden_state, is_transposed_linear
from noiseproof.export.layout import BiasMode, CrossbarArray, crossbar_arrays
from noiseproof.flops import flop_counter
from noiseproof.inputs import call_arguments, leaves, rebuild, zeros
from noiseproof.modes import evaluating

CONVOLUTIONS = (nn.Conv1d, nn.Conv2d, nn.Conv3d)


@dataclass(frozen=True)
class ArrayCensus:
    """One on-chip array over one inference.

    name, module: the tensor and the module owning it; rows x cols: the array (rows = inputs,
    the bias row included); grid: tile rows x tile columns; groups: a convolution's groups;
    users: the layers multiplying by it; calls: their forward calls; vectors: input vectors
    (per group); mvms: tile activations; dac / adc: conversions; macs: analog multiply-adds
    (weight rows x columns read); adds: digital additions of partial sums, slices and a digital
    bias; conductance_us: sum over every activation of the devices read (G+ + G- of every
    position driven and read, uS); bias: where the layer's bias is ('row', 'digital' or None).
    """

    name: str
    module: str
    rows: int
    cols: int
    grid: tuple[int, int]
    groups: int
    users: tuple[str, ...]
    calls: int
    vectors: int
    mvms: int
    dac: int
    adc: int
    macs: int
    adds: int
    conductance_us: float
    pair_conductance_us: float
    bias: str | None

    @property
    def tiles(self) -> int:
        """Tiles the array occupies."""
        return self.grid[0] * self.grid[1]


@dataclass(frozen=True)
class Census:
    """Every on-chip array of one inference, the forward's FLOPs, and the off-chip tensors."""

    arrays: tuple[ArrayCensus, ...]
    flops: int
    tile: tuple[int, int]
    slices: int
    window: tuple[float, float]
    off_chip: dict[str, str] = field(default_factory=dict)

    def total(self, key: str) -> float:
        """Sum of one ArrayCensus field (or property) over the arrays."""
        return sum(getattr(a, key) for a in self.arrays)

    @property
    def analog_flops(self) -> int:
        """2 x the analog MACs: the FLOPs the tiles compute."""
        return 2 * int(self.total("macs"))

    @property
    def digital_flops(self) -> int:
        """The counted FLOPs the tiles do not compute; never below 0 (a kernel torch's counter
        does not count, such as a recurrent layer's on the CPU, leaves the tiles' own)."""
        return max(self.flops - self.analog_flops, 0)


@dataclass
class _Use:
    """Forward calls of one layer in the probe, and the input vectors they carried."""

    calls: int = 0
    vectors: int = 0


def _users(model: nn.Module, arrays: list[CrossbarArray]) -> dict[str, list[tuple[str, nn.Module]]]:
    """Array name -> the layers multiplying by its tensor (Linear, Conv1D, ConvNd: as `weight`;
    a recurrent layer: as a `weight_*`), found by the tensor's identity (a tied weight is
    multiplied wherever it is used as a layer's weight)."""
    params = dict(model.named_parameters())
    by_id = {id(params[a.name]): a.name for a in arrays if a.name in params}
    found: dict[str, list[tuple[str, nn.Module]]] = {a.name: [] for a in arrays}
    for owner, module in model.named_modules():
        for leaf, tensor in module._parameters.items():
            if tensor is None or id(tensor) not in by_id:
                continue
            linear = isinstance(module, (nn.Linear, *CONVOLUTIONS)) or is_transposed_linear(module)
            if (linear and leaf == "weight") or (
                isinstance(module, nn.RNNBase) and leaf.startswith("weight_")
            ):
                found[by_id[id(tensor)]].append((owner, module))
    return found


def _vectors(module: nn.Module, args: tuple, kwargs: dict, out: Any) -> int:
    """Input vectors of one forward call of an MVM layer (module docstring)."""
    if isinstance(module, CONVOLUTIONS):
        return out.numel() // module.out_channels
    x = args[0] if args else next(iter(kwargs.values()))
    if isinstance(x, nn.utils.rnn.PackedSequence):
        return int(x.data.shape[0])
    if isinstance(module, nn.Linear):
        return x.numel() // module.in_features
    if is_transposed_linear(module):
        return x.numel() // cast(Tensor, module.weight).shape[0]
    return x.numel() // x.shape[-1]  # a recurrent layer: one per time step (and sequence)


def probe(model: nn.Module, input_shape: Any, modules: dict[int, nn.Module]) -> tuple[dict, int]:
    """One no-grad forward of a zero example of `input_shape` (batch 1; token ids 0 when the
    model embeds tokens) in eval mode: ({id(module): _Use} for `modules`, total FLOPs)."""
    uses = {key: _Use() for key in modules}

    def hook(module: nn.Module, args: tuple, kwargs: dict, out: Any) -> None:
        use = uses[id(module)]
        use.calls += 1
        use.vectors += _vectors(module, args, kwargs, out)

    def run(example: Any) -> int:
        for use in uses.values():
            use.calls = use.vectors = 0
        args, kwargs = call_arguments(example)
        counter = flop_counter()
        with counter:
            torch.func.functional_call(model, hidden_state(model), args, kwargs)
        return int(counter.get_total_flops())

    handles = [m.register_forward_hook(hook, with_kwargs=True) for m in modules.values()]
    device = next((p.device for p in model.parameters()), torch.device("cpu"))
    example = zeros(input_shape, device)
    try:
        with torch.no_grad(), evaluating(model):
            try:
                flops = run(example)
            except RuntimeError as error:  # torch refuses float indices: a model of tokens
                if "indices" not in str(error):
                    raise
                flops = run(rebuild(example, [t.long() for t in leaves(example)]))
    finally:
        for handle in handles:
            handle.remove()
    return uses, flops


def _layout(array: CrossbarArray, module: nn.Module | None) -> Tensor:
    """The array as laid out on the crossbar (float64, CPU): export's, but a Conv1D weight
    [in, out] without an attached bias as it is stored (inputs on the rows)."""
    matrix = array.matrix.detach().to("cpu", torch.float64)
    if module is not None and is_transposed_linear(module) and array.bias is None:
        return matrix.T
    return matrix


def census(
    model: nn.Module,
    input_shape: Any,
    tile: tuple[int, int],
    window: tuple[float, float],
    *,
    selection: ChipSelection | None = None,
    bias: BiasMode = "row",
    slices: int = 1,
    arrays: tuple[list[CrossbarArray], dict[str, str]] | None = None,
) -> Census:
    """The census of one inference of `model` on an example of `input_shape` (module
    docstring): every on-chip array of `selection` (default: the standard one) laid out with
    `bias` ('row' or 'digital'), cut into `tile` = (rows, cols) tiles, its devices mapped onto
    the conductance `window` (G_min, G_max) in uS with `slices` device pairs per weight.
    arrays: `crossbar_arrays(model, selection, bias)` when already computed."""
    rows, cols = tile
    if min(rows, cols, slices) < 1:
        raise ValueError(f"tile {tile} and slices {slices} must be >= 1")
    found, off_chip = arrays if arrays is not None else crossbar_arrays(model, selection, bias)
    users = _users(model, found)
    modules = {id(m): m for pairs in users.values() for _, m in pairs}
    uses, flops = probe(model, input_shape, modules)
    out = []
    for array in found:
        layer = users[array.name][0][1] if users[array.name] else None
        matrix = _layout(array, layer)
        per_column = _column_conductance(matrix, window)
        use = _Use()
        for _, module in users[array.name]:
            use.calls += uses[id(module)].calls
            use.vectors += uses[id(module)].vectors
        groups = int(getattr(layer, "groups", 1) or 1) if isinstance(layer, CONVOLUTIONS) else 1
        out.append(_count(array, matrix, per_column, use, groups, tile, slices, users[array.name]))
    return Census(tuple(out), flops, tile, slices, window, off_chip)


def _column_conductance(matrix: Tensor, window: tuple[float, float]) -> Tensor:
    """G+ + G- summed over the rows of each column (uS): the devices one column reads, mapped
    as export maps them (noiseproof.export.tiles)."""
    g_min, g_max = window
    scale = matrix.abs().max() if matrix.numel() else matrix.new_zeros(())
    span = (g_max - g_min) / (scale if scale > 0 else 1.0)
    pairs = 2 * g_min + span * matrix.abs()  # G+ + G- = 2 G_min + (G_max - G_min)|w| / scale
    return pairs.sum(dim=0)


def _count(
    array: CrossbarArray,
    matrix: Tensor,
    per_column: Tensor,
    use: _Use,
    groups: int,
    tile: tuple[int, int],
    slices: int,
    users: list[tuple[str, nn.Module]],
) -> ArrayCensus:
    """Tiles, MVMs, conversions, MACs, additions and devices read of one array (module
    docstring): each of `use.vectors` vectors activates each of the `groups` column ranges."""
    n_rows, n_cols = matrix.shape
    rows, cols = tile
    grid = (math.ceil(n_rows / rows), math.ceil(n_cols / cols))
    bias = None if array.bias is None else array.bias.handling
    weight_rows = n_rows - (1 if bias == "row" else 0)
    mvms = dac = adc = macs = adds = 0
    conductance = 0.0
    width = n_cols // groups if groups > 1 and n_cols % groups == 0 else n_cols
    for first in range(0, n_cols, width):
        last = min(first + width, n_cols)
        touched = (last - 1) // cols - first // cols + 1
        read = last - first
        mvms += grid[0] * touched
        dac += n_rows * touched
        adc += grid[0] * read * slices
        macs += weight_rows * read
        adds += read * (grid[0] * slices - 1 + (1 if bias == "digital" else 0))
        conductance += float(per_column[first:last].sum()) * slices
    v = use.vectors
    return ArrayCensus(
        name=array.name,
        module=array.module,
        rows=n_rows,
        cols=n_cols,
        grid=grid,
        groups=groups,
        users=tuple(name for name, _ in users),
        calls=use.calls,
        vectors=v,
        mvms=mvms * v,
        dac=dac * v,
        adc=adc * v,
        macs=macs * v,
        adds=adds * v,
        conductance_us=conductance * v,
        pair_conductance_us=float(per_column.sum()),
        bias=bias,
    )

"""A calibrated chip as a module: the user's model, holding that chip's programmed weights,
with the digital gain and offset per output column that calibration fitted after each
on-chip MVM layer (what `noiseproof calibrate` saves; noiseproof.restore rebuilds it from a
checkpoint whose metadata's 'calibration' names its `layers`).

Its tensors are 'base.<name>' (the model's own: the chip's weights, the re-fitted norm
tensors) and 'columns.<i>.gain' / 'columns.<i>.offset' (digital, the i-th layer of
`layers`), so `chip_selection` keeps the columns off the chip.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any, cast

import torch
from torch import Tensor, nn

from noiseproof.analog import mvm_layers
from noiseproof.calibration.columns import corrected
from noiseproof.chip import ChipSelection, is_transposed_linear
from noiseproof.devices import model_device

COLUMNS_EXCLUDE = "columns.*"


def column_count(module: nn.Module) -> int:
    """Output columns of an MVM layer: a Linear's or a convolution's outputs (weight.shape[0]),
    a Hugging Face Conv1D's (weight.shape[1], its weight is [in, out])."""
    weight = cast(Tensor, module.weight)
    return weight.shape[1] if is_transposed_linear(module) else weight.shape[0]


class Column(nn.Module):
    """One layer's digital correction y -> gain * y + offset per output column (gain 1 and
    offset 0: no change), on `device`."""

    def __init__(self, width: int, device: torch.device | None = None) -> None:
        super().__init__()
        self.gain = nn.Parameter(torch.ones(width, device=device))
        self.offset = nn.Parameter(torch.zeros(width, device=device))


class Calibrated(nn.Module):
    """`base` with a `Column` correction after each of its MVM layers named in `layers`."""

    def __init__(self, base: nn.Module, layers: Sequence[str]) -> None:
        super().__init__()
        modules = dict(base.named_modules())
        unknown = [n for n in layers if n not in modules or not mvm_layers(base, [f"{n}.weight"])]
        if unknown:
            raise ValueError(f"layers: {unknown[0]!r} is not a Linear/Conv layer of the model")
        self.base = base
        self.layers = list(layers)
        device = model_device(base)  # the corrections live where the model does
        self.columns = nn.ModuleList(Column(column_count(modules[n]), device) for n in self.layers)

    @property
    def _columns(self) -> Iterable[Column]:
        """The layers' Column modules, in layer order."""
        return cast(Iterable[Column], self.columns)

    def forward(self, *args: Any, **kwargs: Any) -> Any:
        """base(*args, **kwargs), each layer's output y -> gain * y + offset per column."""
        pairs = {n: (c.gain, c.offset) for n, c in zip(self.layers, self._columns, strict=True)}
        with corrected(self.base, pairs):
            return self.base(*args, **kwargs)

    def chip_selection(self, selection: ChipSelection | None) -> ChipSelection:
        """The selection written for the bare model, its globs re-rooted under 'base.', the
        columns excluded (they are digital)."""
        selection = selection or ChipSelection()
        if COLUMNS_EXCLUDE in selection.exclude:
            return selection
        return selection.model_copy(
            update={
                "include": tuple(f"base.{p}" for p in selection.include),
                "exclude": (*(f"base.{p}" for p in selection.exclude), COLUMNS_EXCLUDE),
            }
        )

    def set_columns(self, columns: dict[str, tuple[Tensor, Tensor]]) -> Calibrated:
        """Copy fitted (gain, offset) pairs (layer name -> [C] tensors) in; returns self."""
        with torch.no_grad():
            for name, column in zip(self.layers, self._columns, strict=True):
                gain, offset = columns[name]
                column.gain.copy_(gain)
                column.offset.copy_(offset)
        return self

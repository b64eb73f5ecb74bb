"""Input and ADC ranges of the analog forward that are state, not configuration: learned with
the network, or calibrated after training (`forward.input_range`, `forward.adc_range`).

After IBM's aihwkit (Rasch et al. 2023, Nat. Commun. 14:5282; aihwkit 1.1.0's
`InputRangeParameter` and `inference.calibration.calibrate_input_ranges`). Per on-chip layer l
(its module name), the DAC spans [-r_l, r_l] in the layer's input units and the ADC
[-R_l, R_l] (or one R_l,j per output column j) in full-scale outputs (noiseproof.analog):

- learned r_l (`LearnedRanges`): before the first training step r_l = init_value (3); over
  the first `init_batches` training forwards of the layer it is the running mean
  r_l <- (r_l n + init_std_alpha std(x)) / (n + 1) of the batch input's std (aihwkit's
  init_from_data); then it is a parameter trained with the network through the clip
  x_c = clip(x, -r, r), whose gradient is aihwkit's: dL/dr = r (sum_{x >= r} min(dL/dx_c, 0)
  - sum_{x <= -r} max(dL/dx_c, 0)) + decay r [share of |x| < r above min_unclipped], plus
  what flows through x_c / r and the output's r (the chain rule). dL/dx = dL/dx_c inside the
  range, 0 outside.
- calibrated r_l (`calibrate_ranges`): the `percentile` of |x| over every input the layer
  sees in the calibration examples, on the digital network (aihwkit's CACHE_QUANTILE takes the
  quantile of the signed inputs; |x| here, as the DAC range is symmetric).
- calibrated R_l or R_l,j: the `percentile` of |y_n| over the layer's normalised outputs (or
  each column's), y_n = (W / max|W|) Q_dac(x_c / r) as in noiseproof.analog, with the
  calibrated (or learned, static) input ranges in place, no output noise, no ADC.

Percentiles interpolate linearly between order statistics (numpy's and torch.quantile's
default): p of n values sorted v_1 <= ... <= v_n is v at rank 1 + (n - 1) p / 100.
A range of 0 (a layer whose inputs or outputs are all 0) is stored as 1 (as noise management's
alpha of an all-zero vector).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor, nn

from noiseproof.analog import AdcRange, AnalogForward, analog_forward, layer_names
from noiseproof.chip import Params, forward, is_transposed_linear
from noiseproof.devices import model_device
from noiseproof.inputs import Inputs, split, to
from noiseproof.modes import evaluating


@dataclass(frozen=True)
class AnalogRanges:
    """Stored ranges: `inputs` {layer: r}, `adc` {layer: (R,) or one R per output column}.

    A checkpoint keeps them in its metadata (`to_dict`, `from_dict`) beside the weights.
    """

    inputs: Mapping[str, float] = field(default_factory=dict)
    adc: Mapping[str, tuple[float, ...]] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready {'inputs': {layer: r}, 'adc': {layer: [R, ...]}}."""
        return {"inputs": dict(self.inputs), "adc": {k: list(v) for k, v in self.adc.items()}}

    @classmethod
    def from_dict(cls, data: Any) -> AnalogRanges:
        """The ranges `to_dict` wrote; ValueError naming `analog_ranges` when malformed."""
        try:
            inputs = {str(k): float(v) for k, v in data.get("inputs", {}).items()}
            adc = {str(k): tuple(float(x) for x in v) for k, v in data.get("adc", {}).items()}
        except (AttributeError, TypeError, ValueError):
            raise ValueError(
                "analog_ranges must be {'inputs': {layer: r}, 'adc': {layer: [R, ...]}}"
            ) from None
        values = [*inputs.values(), *(x for v in adc.values() for x in v)]
        if not all(math.isfinite(v) and v > 0 for v in values):
            raise ValueError("analog_ranges: every range must be a finite number > 0")
        return cls(inputs, adc)

    def merged(self, other: AnalogRanges) -> AnalogRanges:
        """These ranges with `other`'s added (other's win where both have a layer)."""
        return AnalogRanges({**self.inputs, **other.inputs}, {**self.adc, **other.adc})

    def check(self, layers: Sequence[str], effects: AnalogForward) -> None:
        """ValueError naming the key when a layer lacks a range `effects` needs."""
        learned = effects.input_mode in ("learned", "calibrated")
        wanted: list[tuple[str, Mapping[str, Any]]] = (
            [("input_range", self.inputs)] if learned else []
        )
        if effects.adc_calibrated:
            wanted.append(("adc_range", self.adc))
        for key, held in wanted:
            missing = [layer for layer in layers if layer not in held]
            if missing:
                raise ValueError(
                    f"forward.{key}: no {key.replace('_', ' ')} for layer(s) "
                    f"{', '.join(repr(m) for m in missing[:3])} in the ranges given "
                    "(calibrate them with noiseproof.analog_ranges.calibrate_ranges)"
                )

    def clip(self, layer: str, x: Tensor) -> tuple[Tensor, Tensor]:
        """(clip(x, -r, r), r) with the stored r of `layer`."""
        r = self.inputs[layer]
        return x.clamp(-r, r), torch.tensor(r, dtype=x.dtype, device=x.device)

    def adc_bound(self, layer: str) -> Tensor:
        """R of `layer`: 0-d (one per layer) or [out] (one per column)."""
        values = self.adc[layer]
        return torch.tensor(values[0] if len(values) == 1 else values)


class _RangeClip(torch.autograd.Function):
    """clip(x, -r, r) with aihwkit's InputRangeForward gradient (module docstring)."""

    @staticmethod
    def forward(ctx: Any, x: Tensor, r: Tensor, decay: float, min_unclipped: float) -> Tensor:
        ctx.save_for_backward(x, r)
        ctx.decay, ctx.min_unclipped = decay, min_unclipped
        return torch.minimum(torch.maximum(x, -r), r)

    @staticmethod
    def backward(ctx: Any, grad: Tensor) -> tuple[Tensor, Tensor, None, None]:
        x, r = ctx.saved_tensors
        upper, lower = x >= r, x <= -r
        grad_r = (grad * upper).clamp(max=0).sum() - (grad * lower).clamp(min=0).sum()
        grad_r = grad_r * r
        if ctx.decay > 0 and float((x.abs() < r).float().mean()) > ctx.min_unclipped:
            grad_r = grad_r + ctx.decay * r
        return grad * ~(upper | lower), grad_r.reshape(r.shape), None, None


INIT_VALUE = 3.0
"""A learned range before its first data (aihwkit's InputRangeParameter.init_value)."""


class LearnedRanges:
    """Input ranges trained with the network (module docstring): one parameter r per layer,
    kept here and not in the user's module; `parameters()` go to the optimizer."""

    def __init__(self, layers: Sequence[str], effects: AnalogForward, device: torch.device):
        if effects.input_range is None or effects.input_range.mode != "learned":
            raise ValueError("LearnedRanges needs forward.input_range with mode learned")
        self.config = effects.input_range
        self.values = {
            name: torch.tensor(INIT_VALUE, device=device, requires_grad=True) for name in layers
        }
        self.seen = dict.fromkeys(layers, 0)

    def parameters(self) -> list[Tensor]:
        """The trainable ranges, one 0-d tensor per layer."""
        return list(self.values.values())

    def check(self, layers: Sequence[str], effects: AnalogForward) -> None:
        """ValueError naming the key when a layer has no learned range (the ADC range of a
        trained forward is never calibrated: AnalogForward refuses it)."""
        missing = [layer for layer in layers if layer not in self.values]
        if missing:
            raise ValueError(f"forward.input_range: no learned range for layer {missing[0]!r}")

    def clip(self, layer: str, x: Tensor) -> tuple[Tensor, Tensor]:
        """(clip(x, -r, r), r), r first set from the data of the first `init_batches`
        training forwards (running mean of init_std_alpha std(x))."""
        r = self.values[layer]
        if torch.is_grad_enabled() and self.seen[layer] < self.config.init_batches:
            std = float(x.detach().float().std()) if x.numel() > 1 else 0.0
            if std > 0:
                n = self.seen[layer]
                with torch.no_grad():
                    r.copy_((r * n + self.config.init_std_alpha * std) / (n + 1))
                self.seen[layer] = n + 1
        r = r.abs().to(x.dtype)
        return _RangeClip.apply(x, r, self.config.decay, self.config.min_unclipped), r

    def adc_bound(self, layer: str) -> Tensor:
        """Not held: a trained forward's ADC range is one number (AnalogForward)."""
        raise ValueError("forward.adc_range: learned ranges hold input ranges only")

    def ranges(self) -> AnalogRanges:
        """The current ranges as stored ranges (for the checkpoint and evaluation)."""
        return AnalogRanges({name: abs(float(r.detach())) for name, r in self.values.items()})


def learned_ranges(
    model: nn.Module, names: Sequence[str], effects: AnalogForward | None, device: torch.device
) -> LearnedRanges | None:
    """The ranges a training learns: LearnedRanges over the on-chip MVM layers when `effects`
    trains through a learned input range, else None."""
    if effects is None or not effects.train or effects.input_mode != "learned":
        return None
    return LearnedRanges(layer_names(model, names), effects, device)


def _positive(value: Tensor) -> Tensor:
    return torch.where(value > 0, value, torch.ones_like(value))


def _columns(module: nn.Module, y: Tensor) -> Tensor:
    """A layer's outputs as [columns, values]: a Linear's last dimension, a Conv's channels."""
    if isinstance(module, nn.Linear) or is_transposed_linear(module):
        return y.reshape(-1, y.shape[-1]).T
    return y.transpose(0, 1).reshape(y.shape[1], -1)


@torch.no_grad()
def calibrate_ranges(
    model: nn.Module,
    names: Sequence[str],
    effects: AnalogForward,
    x: Inputs,
    *,
    params: Params | None = None,
    ranges: AnalogRanges | LearnedRanges | None = None,
    window: tuple[float, float] | None = None,
    batch_size: int = 2000,
) -> AnalogRanges:
    """The calibrated input and ADC ranges of `model`'s on-chip MVM layers (those owning an
    on-chip `weight` among `names`) from the calibration inputs `x` (module docstring).

    Input ranges are calibrated when `effects.input_range` has mode calibrated, ADC ranges when
    `effects.adc_range` does (per layer or per column); the others come from `ranges` (learned
    input ranges, say) where given. window: the conductance window with `effects.ir_drop`
    (noiseproof.analog.ir_drop_window). params: on-chip tensors standing in for the model's own
    (a programmed chip's, for calibration after programming; default: the model's weights).
    The model runs in eval mode (as on the chip), twice per calibrated kind of range: the
    percentiles are taken in bounded memory (`_percentiles`). Deterministic: no output noise
    is drawn. The model is left as it was.
    """
    if not isinstance(effects, AnalogForward):
        raise TypeError(f"effects must be an AnalogForward, got {type(effects).__name__}")
    x = to(x, model_device(model))
    layers = {name: model.get_submodule(name) for name in layer_names(model, names)}
    if not layers:
        raise ValueError("forward: no on-chip Linear/Conv weight to calibrate")
    stored = ranges.ranges() if isinstance(ranges, LearnedRanges) else ranges or AnalogRanges()

    def inputs(visit: Callable[[str, Tensor], None]) -> None:
        """One pass of the digital network, `visit(layer, |x| as [1, n])` per layer input."""

        def seen(name: str, args: tuple) -> None:
            visit(name, args[0].detach().float().abs().reshape(1, -1))

        handles = [
            module.register_forward_pre_hook(lambda _m, args, name=name: seen(name, args))
            for name, module in layers.items()
        ]
        try:
            with evaluating(model):
                for batch in split(x, batch_size):
                    forward(model, params, batch)
        finally:
            for handle in handles:
                handle.remove()

    if effects.input_mode == "calibrated":
        assert effects.input_range is not None  # the mode is input_range's
        found = _percentiles(inputs, effects.input_range.percentile)
        stored = stored.merged(AnalogRanges({n: float(v[0]) for n, v in found.items()}))
    if effects.adc_calibrated:
        config = effects.adc_range
        assert isinstance(config, AdcRange)  # adc_calibrated: a mapping with mode calibrated
        plain = effects.model_copy(update={"adc_bits": None, "output_noise": 0.0, "adc_range": 1.0})

        def outputs(visit: Callable[[str, Tensor], None]) -> None:
            """One pass with the input ranges in place, `visit(layer, |y_n| as [rows, n])`."""

            def probe(name: str, y: Tensor) -> None:
                column = _columns(layers[name], y.float()).abs()
                visit(name, column if config.per == "column" else column.reshape(1, -1))

            with (
                evaluating(model),
                analog_forward(model, names, plain, torch.Generator(), window, stored, probe),
            ):
                for batch in split(x, batch_size):
                    forward(model, params, batch)

        found = _percentiles(outputs, config.percentile)
        stored = stored.merged(AnalogRanges({}, {n: tuple(v.tolist()) for n, v in found.items()}))
    return stored


def _percentiles(
    sweep: Callable[[Callable[[str, Tensor], None]], None], p: float
) -> dict[str, Tensor]:
    """The p-th percentile (`percentile`; 0 read as 1) per layer and row of the values a
    `sweep` visits, in bounded memory: a first sweep counts them (n per layer), a second keeps
    per row only the n - floor((n - 1) p / 100) largest, the order statistics the percentile
    interpolates between (at the default 99.995, 1 value in 20,000)."""
    counts: dict[str, int] = {}

    def count(name: str, values: Tensor) -> None:
        counts[name] = counts.get(name, 0) + values.shape[-1]

    sweep(count)
    tails: dict[str, Tensor] = {}

    def keep(name: str, values: Tensor) -> None:
        n = counts[name]
        wanted = n - math.floor((n - 1) * p / 100)
        held = values if name not in tails else torch.cat([tails[name], values], dim=-1)
        tails[name] = held.topk(min(wanted, held.shape[-1]), dim=-1).values

    sweep(keep)
    found = {}
    for name, tail in tails.items():
        n = counts[name]
        position = (n - 1) * p / 100
        fraction = position - math.floor(position)
        v_low = tail[..., -1]  # the value of rank floor(position) + 1 of n, ascending
        v_high = tail[..., -2] if tail.shape[-1] > 1 else v_low
        found[name] = _positive(v_low + fraction * (v_high - v_low))
    return found


def check_stored(
    effects: AnalogForward | None, stored: Mapping[str, Any] | None, what: str = "this checkpoint"
) -> None:
    """ValueError naming forward.input_range when `effects` evaluate with learned input ranges
    and `what` (a checkpoint) stored none (its metadata's 'analog_ranges')."""
    if effects is not None and effects.input_mode == "learned" and not stored:
        raise ValueError(
            f"forward.input_range: mode learned needs the ranges its training learned, and "
            f"{what} has none (train it with forward.input_range mode learned)"
        )


def evaluation_forward(
    effects: AnalogForward | None,
    model: nn.Module,
    names: Sequence[str],
    calibration: Inputs | None,
    stored: Mapping[str, Any] | None = None,
    window: tuple[float, float] | None = None,
) -> AnalogForward | None:
    """`effects` with the ranges its evaluation needs attached (`AnalogForward.with_ranges`):
    the learned ranges a checkpoint `stored` (its metadata's 'analog_ranges'), and calibrated
    ones from the `calibration` inputs (`calibrate_ranges`). ValueError naming
    forward.input_range for a learned mode whose checkpoint learned none. calibration may be
    None without effects."""
    if effects is None or not effects.needs_ranges:
        return effects
    check_stored(effects, stored)
    ranges = AnalogRanges.from_dict(stored) if stored else None
    if effects.input_mode == "calibrated" or effects.adc_calibrated:
        assert calibration is not None  # None only without effects
        ranges = calibrate_ranges(model, names, effects, calibration, ranges=ranges, window=window)
    return effects.with_ranges(ranges)

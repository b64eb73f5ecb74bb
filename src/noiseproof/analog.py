"""Analog forward non-idealities of an on-chip matrix-vector multiply: input DAC, additive
output noise, output ADC.

After the input/output model of IBM's aihwkit (Rasch et al. 2023, "Hardware-aware training for
large-scale and diverse deep learning inference workloads using in-memory computing-based
accelerators", Nat. Commun. 14:5282; aihwkit's `IOParameters` with noise management
'abs_max'). For every on-chip Linear/Conv layer and every input vector x (a row of a Linear
input; a whole example for a Conv, whose per-patch vectors share one scale here):

    alpha = max|x|                          (noise management; 1 for an all-zero x)
    x_q   = Q_dac(x / alpha)                (DAC of `dac_bits` over [-1, 1])
    y_n   = (W / w) x_q + sigma n,  n ~ N(0, 1) per output   (w = max|W| of the chip's weights)
    y     = alpha * w * Q_adc(clip(y_n, -R, R)) + b           (ADC of `adc_bits` over [-R, R])

with sigma = `output_noise` and R = `adc_range` in units of a full-scale output (one input at 1
on one weight at 1; aihwkit's defaults are sigma 0.06 and R 12), and the bias b added
digitally. A b-bit quantiser over [-R, R] has 2^b - 1 levels, zero among them:
Q(v) = d * round(v / d), d = 2R / (2^b - 2). In training the quantisers pass gradients
straight through (Q(v) = v + stopgrad(Q(v) - v)).

Input ranges (`input_range`, Rasch et al. 2023 Sec. "Methods"; aihwkit's
`InputRangeParameter` and `calibrate_input_ranges`): in place of noise management, each layer
l has one range r_l in its own input units, and

    x_c = clip(x, -r_l, r_l),   x_q = Q_dac(x_c / r_l),   y = r_l w Q_adc(...) + b

(alpha = r_l above). `static`: r_l = `value` for every layer; `learned`: trained with the
network (initialised from the first batches' input std, aihwkit's gradient through the clip
and its decay: noiseproof.analog_ranges.LearnedRanges); `calibrated`: a percentile of |x|
over the calibration examples' inputs to the layer (noiseproof.analog_ranges.calibrate_ranges).
ADC ranges (`adc_range`): one number R (the default, 12), `{mode: static, value: R}`, or
`{mode: calibrated, per: layer | column, percentile: p}`: R_l, or R_l,j per output column j,
the p-th percentile of |y_n| over the calibration examples, y_n the normalised output before
output noise and ADC. Learned and calibrated ranges are state, kept outside the user's module
(noiseproof.analog_ranges.AnalogRanges: in the checkpoint's metadata, attached to the effects
by `AnalogForward.with_ranges`).

Bit slicing (`weight_slices`, `bits_per_slice`; ISAAC, Shafiee et al. ISCA 2016): each weight
quantised to weight_slices x bits_per_slice bits and stored on weight_slices device pairs,
each perturbed by the noise model on its own and recombined digitally, W = sum_s c_s W_s
(noiseproof.noise.slicing gives the decomposition; evaluation.chipstream the draws).

IR drop (`ir_drop: {wire_resistance_ohm: r, tile: ROWSxCOLS}`; noiseproof.irdrop) replaces
W x_q above by what the crossbar tiles compute through their resistive wires. The layer's
weights (as the chip perturbed them) are laid out as `noiseproof export` does, the array
A = W.reshape(out, -1).T (inputs on rows), mapped onto differential pairs over the noise model's
conductance window with the scale max|A|, cut into ROWSxCOLS tiles (each device of a pair on a
tile of its own); the inputs drive the rows as voltages v = v_read x_q (x_q in [-1, 1] after the
DAC: max|x| -> v_read); each tile's column currents I+ - I- are mapped back to weight units,
(I+ - I-) max|A| / ((G_max - G_min) v_read), and summed over the tiles of a column digitally,
before the output noise and the ADC. The network is linear, so v_read cancels (no device
nonlinearity is modelled) and the whole is x_q A_eff with the effective array A_eff of
`irdrop.effective_weights`, computed once per chip and layer (the per-chip setup) and then one
matrix product per input, as the ideal layer. Conv layers use A_eff as their kernel (the
unfolded patches are the input vectors); grouped convolutions are refused.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any, ClassVar, Literal, Protocol, Self, cast

import torch
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    PrivateAttr,
    SerializerFunctionWrapHandler,
    field_validator,
    model_serializer,
    model_validator,
)
from torch import Tensor, nn

from noiseproof.chip import is_transposed_linear
from noiseproof.export.tiles import conductance_window, parse_tile
from noiseproof.irdrop import MAX_TILE, effective_weights
from noiseproof.noise.base import NoiseModel

MVM_LAYERS = (nn.Linear, nn.Conv1d, nn.Conv2d, nn.Conv3d)
CONV_LAYERS = (nn.Conv1d, nn.Conv2d, nn.Conv3d)


class IRDrop(BaseModel):
    """`forward.ir_drop`: the wire resistance of the crossbar tiles every on-chip MVM runs on
    (noiseproof.irdrop: circuit, solvers, accuracy)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    wire_resistance_ohm: float = Field(
        ..., ge=0, allow_inf_nan=False, description="resistance of one wire segment (Ohm)"
    )
    tile: str = Field(..., description="crossbar tile ROWSxCOLS in weights, as export --tile")

    @field_validator("tile", mode="before")
    @classmethod
    def _tile(cls, value: object) -> str:
        if not isinstance(value, str):
            hint = (
                " (quote it in YAML: 0x8 reads as the number 8)" if isinstance(value, int) else ""
            )
            raise ValueError(f"must be a string ROWSxCOLS (e.g. 256x256), got {value!r}{hint}")
        rows, cols = parse_tile(value)
        if max(rows, cols) > MAX_TILE:
            raise ValueError(
                f"{rows}x{cols} is over the {MAX_TILE}x{MAX_TILE} the IR-drop solver takes "
                "(its cost grows as rows x cols^3)"
            )
        return f"{rows}x{cols}"

    @property
    def shape(self) -> tuple[int, int]:
        """(rows, cols) of one tile."""
        return parse_tile(self.tile)


class _Range(BaseModel):
    """A range given as a static `value` or set from data (`mode`): `forward.<key>`."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    key: ClassVar[str] = ""
    if TYPE_CHECKING:  # the fields every subclass declares (with its own modes)
        mode: str
        value: float | None

    @model_validator(mode="after")
    def _value(self) -> Self:
        if (self.mode == "static") != (self.value is not None):
            raise ValueError(f"{self.key}.value is given with mode static, and only then")
        return self


class InputRange(_Range):
    """`forward.input_range`: the range r each on-chip layer's DAC spans, in place of the
    default noise management (r = max|x| per input vector). Inputs are clipped to [-r, r] and
    divided by r (module docstring); r is in the layer's own input units."""

    key: ClassVar[str] = "input_range"

    mode: Literal["static", "learned", "calibrated"] = Field(
        ...,
        description="static: `value`; learned: trained with the network; calibrated: a "
        "percentile of the inputs each layer sees in the calibration examples",
    )
    value: float | None = Field(
        None, gt=0, allow_inf_nan=False, description="static: r in the layers' input units"
    )
    init_batches: int = Field(
        100, ge=0, strict=True, description="learned: training batches whose input std sets r"
    )
    init_std_alpha: float = Field(
        3.0, gt=0, allow_inf_nan=False, description="learned: r from data = alpha std(x)"
    )
    decay: float = Field(
        0.001, ge=0, allow_inf_nan=False, description="learned: shrink rate of an unclipped r"
    )
    min_unclipped: float = Field(
        0.95, ge=0, le=1, allow_inf_nan=False, description="learned: decay only above this share"
    )
    percentile: float = Field(
        99.995, gt=0, le=100, allow_inf_nan=False, description="calibrated: percentile of |x|"
    )


class AdcRange(_Range):
    """`forward.adc_range` as a mapping: a static R, or R calibrated per layer or per output
    column from the calibration examples' outputs (a plain number is mode static)."""

    key: ClassVar[str] = "adc_range"

    mode: Literal["static", "calibrated"] = Field(..., description="static: `value`; calibrated")
    value: float | None = Field(
        None, gt=0, allow_inf_nan=False, description="static: R in full-scale outputs"
    )
    per: Literal["layer", "column"] = Field(
        "layer", description="calibrated: one R per layer or per output column"
    )
    percentile: float = Field(
        99.995, gt=0, le=100, allow_inf_nan=False, description="calibrated: percentile of |y|"
    )


LATER_DEFAULTS = {
    "input_range": None,
    "weight_slices": 1,
    "bits_per_slice": None,
    "calibration_examples": 512,
}
"""Keys added to `forward:` after its first version, with their defaults (left out of dumps)."""

MAX_SLICED_BITS = 24
"""Most bits weight_slices x bits_per_slice may give a weight (float32's mantissa)."""


class AnalogForward(BaseModel):
    """The `forward:` section: which analog effects every on-chip MVM layer gets.

    dac_bits / adc_bits None: ideal input / output conversion; output_noise 0: no read noise;
    ir_drop None: ideal wires; input_range None: noise management (max|x| per input vector);
    bits_per_slice None: one device pair per weight, unquantised. train: apply them in
    training too (default: evaluation over simulated chips only). Learned or calibrated
    ranges are state, not configuration: `with_ranges` attaches them (they are not part of
    the section's dump or its hash), and `analog_forward` reads them.

    >>> import noiseproof as nf
    >>> effects = nf.AnalogForward(dac_bits=8, adc_bits=8, output_noise=0.04)
    >>> effects.adc_range, effects.train  # ADC range in full-scale outputs; evaluation only
    (12.0, False)
    """

    model_config = ConfigDict(extra="forbid", frozen=True)
    _ranges: RangeSource | None = PrivateAttr(None)

    dac_bits: int | None = Field(None, ge=2, le=24, strict=True, description="input DAC bits")
    adc_bits: int | None = Field(None, ge=2, le=24, strict=True, description="output ADC bits")
    adc_range: float | AdcRange = Field(
        12.0,
        description="ADC range R, in full-scale outputs, or {mode: calibrated, per: layer|column}",
    )
    output_noise: float = Field(
        0.0, ge=0, allow_inf_nan=False, description="std of additive output noise per MVM"
    )
    ir_drop: IRDrop | None = Field(None, description="wire resistance of the crossbar tiles")
    input_range: InputRange | None = Field(
        None, description="DAC input range: static, learned or calibrated (None: max|x|)"
    )
    weight_slices: int = Field(
        1, ge=1, le=MAX_SLICED_BITS, strict=True, description="device pairs per weight"
    )
    bits_per_slice: int | None = Field(
        None, ge=1, le=MAX_SLICED_BITS, strict=True, description="bits each device pair holds"
    )
    calibration_examples: int = Field(
        512, ge=1, strict=True, description="training inputs calibrated ranges are read from"
    )
    train: bool = Field(False, description="also apply the effects in training")

    @field_validator("adc_range", mode="after")
    @classmethod
    def _finite_range(cls, value: float | AdcRange) -> float | AdcRange:
        if isinstance(value, float) and not (0 < value < float("inf")):
            raise ValueError(f"must be a number > 0 or a mapping with mode, got {value!r}")
        return value

    @model_serializer(mode="wrap")
    def _dump(self, handler: SerializerFunctionWrapHandler) -> dict[str, Any]:
        """The section's dump without the range and slicing keys left at their defaults, so a
        section written before they existed dumps (and hashes, for --resume) as it did."""
        dumped = handler(self)
        for key, default in LATER_DEFAULTS.items():
            if key in dumped and getattr(self, key) == default:
                del dumped[key]
        return dumped

    @model_validator(mode="after")
    def _some_effect(self) -> Self:
        if (
            self.dac_bits is None
            and self.adc_bits is None
            and self.output_noise == 0
            and self.ir_drop is None
            and self.input_range is None
            and self.bits_per_slice is None
        ):
            raise ValueError(
                "forward: set at least one of dac_bits, adc_bits, output_noise, ir_drop, "
                "input_range, bits_per_slice"
            )
        if self.bits_per_slice is None and self.weight_slices > 1:
            raise ValueError("forward.weight_slices > 1 needs forward.bits_per_slice")
        if self.sliced_bits > MAX_SLICED_BITS:
            raise ValueError(
                f"forward.weight_slices x bits_per_slice is {self.sliced_bits} bits: at most "
                f"{MAX_SLICED_BITS}"
            )
        if self.adc_calibrated and self.adc_bits is None:
            raise ValueError("forward.adc_range: mode calibrated needs adc_bits (an ADC to range)")
        if self.train and (self.input_mode == "calibrated" or self.adc_calibrated):
            key = "input_range" if self.input_mode == "calibrated" else "adc_range"
            raise ValueError(
                f"forward.{key}: mode calibrated is set after training, so forward.train cannot "
                "run through it (train with a static or learned range)"
            )
        if self.input_mode == "learned" and not self.train:
            raise ValueError(
                "forward.input_range: mode learned trains r with the network: set forward.train"
            )
        return self

    @property
    def sliced_bits(self) -> int:
        """Bits of a sliced weight, weight_slices x bits_per_slice (0: not sliced)."""
        return self.weight_slices * (self.bits_per_slice or 0)

    @property
    def input_mode(self) -> str:
        """'noise_management' (the default, max|x| per vector) or input_range.mode."""
        return "noise_management" if self.input_range is None else self.input_range.mode

    @property
    def adc_calibrated(self) -> bool:
        """Whether the ADC range is calibrated (per layer or column), not one number."""
        return isinstance(self.adc_range, AdcRange) and self.adc_range.mode == "calibrated"

    @property
    def static_adc_range(self) -> float:
        """R when one number gives it (a float or mode static)."""
        if isinstance(self.adc_range, AdcRange):
            assert self.adc_range.value is not None, "calibrated: read AnalogRanges.adc"
            return self.adc_range.value
        return self.adc_range

    def with_ranges(self, ranges: RangeSource | None) -> AnalogForward:
        """A copy carrying `ranges` (learned or calibrated: noiseproof.analog_ranges), which
        `analog_forward` and `run_transfers` then use; None drops them."""
        copy = self.model_copy()
        copy._ranges = ranges
        return copy

    @property
    def ranges(self) -> RangeSource | None:
        """The ranges `with_ranges` attached, or None."""
        return self._ranges

    @property
    def in_the_forward(self) -> bool:
        """Whether any effect acts in the forward (all but bit slicing, which acts on the
        chip's weights: noiseproof.noise.slicing)."""
        return (
            self.dac_bits is not None
            or self.adc_bits is not None
            or self.output_noise > 0
            or self.ir_drop is not None
            or self.input_range is not None
        )

    @property
    def slicing(self) -> tuple[int, int] | None:
        """(weight_slices, bits_per_slice) when weights are bit-sliced, else None."""
        return None if self.bits_per_slice is None else (self.weight_slices, self.bits_per_slice)

    @property
    def needs_ranges(self) -> bool:
        """Whether the forward needs per-layer ranges (learned or calibrated: AnalogRanges)."""
        return self.input_mode in ("learned", "calibrated") or self.adc_calibrated


IR_DROP_MODELS = "tio2_crossbar, pcm or measured"
"""Noise models with a conductance window, named in the refusal of the others."""


def ir_drop_window(
    effects: AnalogForward | None, noise: NoiseModel | None
) -> tuple[float, float] | None:
    """The conductance window (G_min, G_max) in uS that `effects.ir_drop` maps the weights onto:
    the noise model's; None without ir_drop. ValueError in one line, naming the noise model,
    for one that does not map weights onto conductances (or for no noise model)."""
    if effects is None or effects.ir_drop is None:
        return None
    if noise is None:
        raise ValueError(
            "forward.ir_drop needs a noise model that maps weights onto conductances "
            f"({IR_DROP_MODELS}), for its conductance window: none given"
        )
    try:
        return conductance_window(noise)
    except ValueError as error:
        raise ValueError(
            f"forward.ir_drop: {error}: IR drop needs its conductance window (use {IR_DROP_MODELS})"
        ) from None


def quantize(v: Tensor, bits: int, bound: float | Tensor) -> Tensor:
    """Q(v) = d round(clip(v, -bound, bound) / d), d = 2 bound / (2^bits - 2): a symmetric
    quantiser with 2^bits - 1 levels including 0; the gradient passes straight through.
    bound: one number, or a tensor broadcasting onto v (an ADC range per output column)."""
    step = 2.0 * bound / (2**bits - 2)
    # one call, split for mypy: torch's clamp takes two numbers or two tensors
    clipped = v.clamp(-bound, bound) if isinstance(bound, Tensor) else v.clamp(-bound, bound)
    return clipped + (torch.round(clipped / step) * step - clipped).detach()


class RangeSource(Protocol):
    """Per-layer ranges `analog_forward` reads when `effects.needs_ranges`
    (noiseproof.analog_ranges: AnalogRanges, calibrated or stored; LearnedRanges, trained)."""

    def check(self, layers: Sequence[str], effects: AnalogForward) -> None:
        """ValueError naming the key when a range `effects` needs is missing for a layer."""

    def clip(self, layer: str, x: Tensor) -> tuple[Tensor, Tensor]:
        """(clip(x, -r, r), r) with the layer's input range r (a 0-d tensor)."""

    def adc_bound(self, layer: str) -> Tensor:
        """The layer's ADC range R: 0-d, or one per output column ([out])."""


def _input_scale(module: nn.Module, x: Tensor) -> Tensor:
    """alpha = max|x| per input vector (Linear: last dim; Conv: the whole example), 1 where 0."""
    if isinstance(module, nn.Linear) or is_transposed_linear(module):
        alpha = x.detach().abs().amax(dim=-1, keepdim=True)
    else:
        alpha = x.detach().abs().flatten(1).amax(dim=1).view(-1, *([1] * (x.dim() - 1)))
    return torch.where(alpha > 0, alpha, torch.ones_like(alpha))


def per_output(module: nn.Module, values: Tensor, out: Tensor) -> Tensor:
    """`values` (one per output: a bias, per-column ADC ranges) shaped to broadcast onto the
    layer's output `out` (a Linear's last dimension, a Conv's channel dimension)."""
    if values.dim() == 0 or isinstance(module, nn.Linear) or is_transposed_linear(module):
        return values
    return values.view(-1, *([1] * (out.dim() - 2)))


def _bias_view(module: nn.Module, out: Tensor) -> Tensor | None:
    """The module's bias shaped to broadcast onto its output, or None."""
    bias = getattr(module, "bias", None)
    return None if bias is None else per_output(module, bias, out)


def mvm_layers(model: nn.Module, names: Sequence[str]) -> list[nn.Module]:
    """The Linear/Conv modules (and Hugging Face's Conv1D, a transposed Linear) whose `weight`
    is among the on-chip tensor `names`."""
    return list(_named_mvm_layers(model, names).values())


def _named_mvm_layers(model: nn.Module, names: Sequence[str]) -> dict[str, nn.Module]:
    layers = {}
    for name in names:
        owner, _, leaf = name.rpartition(".")
        module = model.get_submodule(owner)
        if leaf == "weight" and (isinstance(module, MVM_LAYERS) or is_transposed_linear(module)):
            layers[owner] = module
    return layers


def crossbar_array(module: nn.Module, weight: Tensor) -> Tensor:
    """The array a layer's weight is laid out as (inputs on rows, outputs on columns; as
    `noiseproof export`): weight.reshape(out, -1).T, a transposed Linear's [in, out] weight
    as it is."""
    return weight if is_transposed_linear(module) else weight.reshape(weight.shape[0], -1).T


def _product(module: nn.Module, x: Tensor, weight: Tensor) -> Tensor:
    """The layer's matrix-vector product with `weight` in place of its own, no bias."""
    if isinstance(module, CONV_LAYERS):
        return module._conv_forward(x, weight, None)
    if is_transposed_linear(module):
        return x @ weight
    return nn.functional.linear(x, weight)


def layer_names(model: nn.Module, names: Sequence[str]) -> list[str]:
    """The module names of the on-chip MVM layers (`mvm_layers`), in the order of `names`."""
    return list(_named_mvm_layers(model, names))


@contextmanager
def analog_forward(
    model: nn.Module,
    names: Sequence[str],
    effects: AnalogForward,
    generator: torch.Generator,
    window: tuple[float, float] | None = None,
    ranges: RangeSource | None = None,
    probe: Callable[[str, Tensor], None] | None = None,
) -> Iterator[None]:
    """Within the block, every forward of the on-chip MVM layers of `model` (those owning an
    on-chip `weight` among `names`) goes through the DAC, IR drop, output noise and ADC of
    `effects` (module docstring), the output noise drawn from `generator` in call order. The
    weights are those the forward uses (a chip's perturbed weights under functional_call).
    window: the conductance window (G_min, G_max) in uS IR drop maps weights onto (required
    with `effects.ir_drop`: `ir_drop_window` of the noise model). A layer's effective IR-drop
    weights are computed once per weight tensor while gradients are off (one chip's weights
    serve all its batches) and on every forward in training. ranges: the per-layer input and
    ADC ranges of a learned or calibrated `input_range`/`adc_range` (noiseproof.analog_ranges;
    ValueError naming the key when they are needed and missing). probe(layer, y): called with
    each layer's normalised output y_n before output noise and ADC (calibration reads it).
    Hooks are removed on exit: the module is left as it was.
    """
    if not isinstance(effects, AnalogForward):
        raise TypeError(f"effects must be an AnalogForward, got {type(effects).__name__}")
    named = _named_mvm_layers(model, names)
    if not named:
        raise ValueError("forward: no on-chip Linear/Conv weight to apply the effects to")
    ranges = effects.ranges if ranges is None else ranges
    check_ranges(effects, ranges, list(named))
    ir_drop = effects.ir_drop
    if ir_drop is not None:
        if window is None:
            raise ValueError(
                "forward.ir_drop needs the conductance window of the noise model "
                "(window=ir_drop_window(effects, noise))"
            )
        for name, layer in named.items():
            if isinstance(layer, CONV_LAYERS) and layer.groups != 1:
                raise ValueError(
                    f"forward.ir_drop: layer '{name}' is a grouped convolution (groups="
                    f"{layer.groups}), which IR drop does not support yet"
                )
    scales: dict[int, Tensor] = {}
    cached: dict[int, tuple[Tensor, int, Tensor]] = {}
    mode, static = effects.input_mode, effects.input_range

    def crossbar_weight(module: nn.Module) -> Tensor:
        """The layer's weight as its IR-dropped tiles compute it (cached per weight tensor
        while gradients are off)."""
        assert window is not None and ir_drop is not None  # only called with ir_drop, checked
        weight = cast(Tensor, module.weight)
        keep = not (torch.is_grad_enabled() and weight.requires_grad)
        hit = cached.get(id(module))
        if keep and hit is not None and hit[0] is weight and hit[1] == weight._version:
            return hit[2]
        with torch.autocast(weight.device.type, enabled=False):  # solved in float64
            array = effective_weights(
                crossbar_array(module, weight), window, ir_drop.shape, ir_drop.wire_resistance_ohm
            )
        effective = array if is_transposed_linear(module) else array.T.reshape(weight.shape)
        if keep:
            cached[id(module)] = (weight, weight._version, effective)
        return effective

    def before(name: str, module: nn.Module, args: tuple) -> tuple:
        x = args[0]
        if mode == "noise_management":
            alpha = _input_scale(module, x)
        elif mode == "static":
            assert static is not None and static.value is not None  # mode static: a value
            alpha = torch.tensor(static.value, dtype=x.dtype, device=x.device)
            x = x.clamp(-static.value, static.value)
        else:
            assert ranges is not None  # check_ranges: present when a mode needs them
            x, alpha = ranges.clip(name, x)
        scales[id(module)] = alpha
        x_n = x / alpha
        if effects.dac_bits is not None:
            x_n = quantize(x_n, effects.dac_bits, 1.0)
        return (x_n, *args[1:])

    def after(name: str, module: nn.Module, args: tuple, out: Tensor) -> Tensor:
        alpha = scales.pop(id(module))
        bias = _bias_view(module, out)
        if ir_drop is None:
            y = out if bias is None else out - bias
        else:
            y = _product(module, args[0], crossbar_weight(module))
        if probe is None and not effects.output_noise and effects.adc_bits is None:
            y = y * alpha  # no output effect: the full-scale unit w cancels
            return y if bias is None else y + bias
        w = cast(Tensor, module.weight).detach().abs().amax()
        w = torch.where(w > 0, w, torch.ones_like(w))
        y = y / w
        if probe is not None:
            probe(name, y.detach())
        if effects.output_noise:
            draw = torch.randn(y.shape, generator=generator, dtype=y.dtype, device=generator.device)
            y = y + effects.output_noise * draw.to(y.device)
        if effects.adc_bits is not None:
            bound: float | Tensor
            if effects.adc_calibrated:
                assert ranges is not None  # check_ranges: present when a mode needs them
                bound = per_output(module, ranges.adc_bound(name).to(y), y)
            else:
                bound = effects.static_adc_range
            y = quantize(y, effects.adc_bits, bound)
        y = y * (alpha * w)
        return y if bias is None else y + bias

    handles = []
    try:
        for name, layer in named.items():
            handles.append(layer.register_forward_pre_hook(functools.partial(before, name)))
            handles.append(layer.register_forward_hook(functools.partial(after, name)))
        yield
    finally:
        for handle in handles:
            handle.remove()


def check_ranges(effects: AnalogForward, ranges: RangeSource | None, layers: Sequence[str]) -> None:
    """ValueError naming the key when `effects` needs learned or calibrated ranges for
    `layers` and `ranges` does not hold them (None, or a layer missing)."""
    if not effects.needs_ranges:
        return
    if ranges is None:
        key = "adc_range" if effects.input_mode not in ("learned", "calibrated") else "input_range"
        mode = "calibrated" if key == "adc_range" else effects.input_mode
        how = (
            "train with forward.train and evaluate the checkpoint"
            if mode == "learned"
            else "compute them with noiseproof.analog_ranges.calibrate_ranges"
        )
        raise ValueError(f"forward.{key}: mode {mode} needs {mode} ranges, none given ({how})")
    ranges.check(layers, effects)

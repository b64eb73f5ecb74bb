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

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Self

import torch
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator
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


class AnalogForward(BaseModel):
    """The `forward:` section: which analog effects every on-chip MVM layer gets.

    dac_bits / adc_bits None: ideal input / output conversion; output_noise 0: no read noise;
    ir_drop None: ideal wires. train: apply them in training too (default: evaluation over
    simulated chips only).
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    dac_bits: int | None = Field(None, ge=2, le=24, strict=True, description="input DAC bits")
    adc_bits: int | None = Field(None, ge=2, le=24, strict=True, description="output ADC bits")
    adc_range: float = Field(
        12.0, gt=0, allow_inf_nan=False, description="ADC range R, in full-scale outputs"
    )
    output_noise: float = Field(
        0.0, ge=0, allow_inf_nan=False, description="std of additive output noise per MVM"
    )
    ir_drop: IRDrop | None = Field(None, description="wire resistance of the crossbar tiles")
    train: bool = Field(False, description="also apply the effects in training")

    @model_validator(mode="after")
    def _some_effect(self) -> Self:
        if (
            self.dac_bits is None
            and self.adc_bits is None
            and self.output_noise == 0
            and self.ir_drop is None
        ):
            raise ValueError(
                "forward: set at least one of dac_bits, adc_bits, output_noise, ir_drop"
            )
        return self


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


def quantize(v: Tensor, bits: int, bound: float) -> Tensor:
    """Q(v) = d round(clip(v, -bound, bound) / d), d = 2 bound / (2^bits - 2): a symmetric
    quantiser with 2^bits - 1 levels including 0; the gradient passes straight through."""
    step = 2.0 * bound / (2**bits - 2)
    clipped = v.clamp(-bound, bound)
    return clipped + (torch.round(clipped / step) * step - clipped).detach()


def _input_scale(module: nn.Module, x: Tensor) -> Tensor:
    """alpha = max|x| per input vector (Linear: last dim; Conv: the whole example), 1 where 0."""
    if isinstance(module, nn.Linear) or is_transposed_linear(module):
        alpha = x.detach().abs().amax(dim=-1, keepdim=True)
    else:
        alpha = x.detach().abs().flatten(1).amax(dim=1).view(-1, *([1] * (x.dim() - 1)))
    return torch.where(alpha > 0, alpha, torch.ones_like(alpha))


def _bias_view(module: nn.Module, out: Tensor) -> Tensor | None:
    """The module's bias shaped to broadcast onto its output, or None."""
    bias = getattr(module, "bias", None)
    if bias is None:
        return None
    if isinstance(module, nn.Linear) or is_transposed_linear(module):
        return bias
    return bias.view(-1, *([1] * (out.dim() - 2)))


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


@contextmanager
def analog_forward(
    model: nn.Module,
    names: Sequence[str],
    effects: AnalogForward,
    generator: torch.Generator,
    window: tuple[float, float] | None = None,
) -> Iterator[None]:
    """Within the block, every forward of the on-chip MVM layers of `model` (those owning an
    on-chip `weight` among `names`) goes through the DAC, IR drop, output noise and ADC of
    `effects` (module docstring), the output noise drawn from `generator` in call order. The
    weights are those the forward uses (a chip's perturbed weights under functional_call).
    window: the conductance window (G_min, G_max) in uS IR drop maps weights onto (required
    with `effects.ir_drop`: `ir_drop_window` of the noise model). A layer's effective IR-drop
    weights are computed once per weight tensor while gradients are off (one chip's weights
    serve all its batches) and on every forward in training. Hooks are removed on exit: the
    module is left as it was.
    """
    if not isinstance(effects, AnalogForward):
        raise TypeError(f"effects must be an AnalogForward, got {type(effects).__name__}")
    named = _named_mvm_layers(model, names)
    layers = list(named.values())
    if not layers:
        raise ValueError("forward: no on-chip Linear/Conv weight to apply the effects to")
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

    def crossbar_weight(module: nn.Module) -> Tensor:
        """The layer's weight as its IR-dropped tiles compute it (cached per weight tensor
        while gradients are off)."""
        weight = module.weight
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

    def before(module: nn.Module, args: tuple) -> tuple:
        x = args[0]
        alpha = _input_scale(module, x)
        scales[id(module)] = alpha
        x_n = x / alpha
        if effects.dac_bits is not None:
            x_n = quantize(x_n, effects.dac_bits, 1.0)
        return (x_n, *args[1:])

    def after(module: nn.Module, args: tuple, out: Tensor) -> Tensor:
        alpha = scales.pop(id(module))
        bias = _bias_view(module, out)
        if ir_drop is None:
            y = out if bias is None else out - bias
        else:
            y = _product(module, args[0], crossbar_weight(module))
        if not effects.output_noise and effects.adc_bits is None:
            y = y * alpha  # no output effect: the full-scale unit w cancels
            return y if bias is None else y + bias
        w = module.weight.detach().abs().amax()
        w = torch.where(w > 0, w, torch.ones_like(w))
        y = y / w
        if effects.output_noise:
            draw = torch.randn(y.shape, generator=generator, dtype=y.dtype, device=generator.device)
            y = y + effects.output_noise * draw.to(y.device)
        if effects.adc_bits is not None:
            y = quantize(y, effects.adc_bits, effects.adc_range)
        y = y * (alpha * w)
        return y if bias is None else y + bias

    handles = []
    try:
        for layer in layers:
            handles.append(layer.register_forward_pre_hook(before))
            handles.append(layer.register_forward_hook(after))
        yield
    finally:
        for handle in handles:
            handle.remove()

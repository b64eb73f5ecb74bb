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
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Self

import torch
from pydantic import BaseModel, ConfigDict, Field, model_validator
from torch import Tensor, nn

from noiseproof.chip import is_transposed_linear

MVM_LAYERS = (nn.Linear, nn.Conv1d, nn.Conv2d, nn.Conv3d)


class AnalogForward(BaseModel):
    """The `forward:` section: which analog effects every on-chip MVM layer gets.

    dac_bits / adc_bits None: ideal input / output conversion; output_noise 0: no read noise.
    train: apply them in training too (default: evaluation over simulated chips only).
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
    train: bool = Field(False, description="also apply the effects in training")

    @model_validator(mode="after")
    def _some_effect(self) -> Self:
        if self.dac_bits is None and self.adc_bits is None and self.output_noise == 0:
            raise ValueError("forward: set at least one of dac_bits, adc_bits, output_noise")
        return self


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
    layers = []
    for name in names:
        owner, _, leaf = name.rpartition(".")
        module = model.get_submodule(owner)
        if leaf == "weight" and (isinstance(module, MVM_LAYERS) or is_transposed_linear(module)):
            layers.append(module)
    return layers


@contextmanager
def analog_forward(
    model: nn.Module,
    names: Sequence[str],
    effects: AnalogForward,
    generator: torch.Generator,
) -> Iterator[None]:
    """Within the block, every forward of the on-chip MVM layers of `model` (those owning an
    on-chip `weight` among `names`) goes through the DAC, output noise and ADC of `effects`
    (module docstring), the output noise drawn from `generator` in call order. The weights are
    those the forward uses (a chip's perturbed weights under functional_call). Hooks are
    removed on exit: the module is left as it was.
    """
    if not isinstance(effects, AnalogForward):
        raise TypeError(f"effects must be an AnalogForward, got {type(effects).__name__}")
    layers = mvm_layers(model, names)
    if not layers:
        raise ValueError("forward: no on-chip Linear/Conv weight to apply the effects to")
    scales: dict[int, Tensor] = {}

    def before(module: nn.Module, args: tuple) -> tuple:
        x = args[0]
        alpha = _input_scale(module, x)
        scales[id(module)] = alpha
        x_n = x / alpha
        if effects.dac_bits is not None:
            x_n = quantize(x_n, effects.dac_bits, 1.0)
        return (x_n, *args[1:])

    def after(module: nn.Module, _args: tuple, out: Tensor) -> Tensor:
        alpha = scales.pop(id(module))
        bias = _bias_view(module, out)
        w = module.weight.detach().abs().amax()
        w = torch.where(w > 0, w, torch.ones_like(w))
        y = (out if bias is None else out - bias) / w
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

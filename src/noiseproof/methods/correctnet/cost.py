"""What compensation costs: extra parameters and multiply-accumulates, against the model's own."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any, cast

from torch import Tensor, nn

from noiseproof.methods.correctnet.compensation import ChannelAffine, Compensated, probe_forward


def layer_macs(model: nn.Module, input_shape: Any) -> dict[str, int]:
    """Multiply-accumulates per example of every Linear/ConvNd in `model` (full names).

    Linear: in_features * out_features per output row; ConvNd: output elements * C_in/groups *
    prod(kernel); ChannelAffine: one per output element. Measured with forward hooks on one
    eval-mode forward of a zero input.
    """
    counts: dict[str, int] = {}

    def hook(name: str) -> Callable[[nn.Module, tuple, Tensor], None]:
        def count(module: nn.Module, inputs: tuple, out: Tensor) -> None:
            if isinstance(module, nn.Linear):
                rows = out.numel() // out.shape[-1]
                macs = rows * module.in_features * module.out_features
            elif isinstance(module, ChannelAffine):
                macs = out.numel()
            else:  # a ConvNd: the hooks below are on Linear, ConvNd and ChannelAffine only
                conv = cast(nn.Conv1d | nn.Conv2d | nn.Conv3d, module)
                per_output = conv.in_channels // conv.groups * math.prod(conv.kernel_size)
                macs = out.numel() * per_output
            counts[name] = counts.get(name, 0) + int(macs)

        return count

    handles = [
        module.register_forward_hook(hook(name))
        for name, module in model.named_modules()
        if isinstance(module, nn.Linear | nn.Conv1d | nn.Conv2d | nn.Conv3d | ChannelAffine)
    ]
    probe_forward(model, input_shape, handles)
    return counts


def overhead(model: Compensated, input_shape: Any) -> dict[str, float]:
    """Extra parameters and MACs of the compensation, absolute and as % of the original model's."""
    base_params = sum(p.numel() for p in model.base.parameters())
    comp_params = sum(p.numel() for p in model.comp.parameters())
    macs = layer_macs(model, input_shape)
    comp_macs = sum(v for k, v in macs.items() if k.startswith("comp."))
    base_macs = sum(v for k, v in macs.items() if k.startswith("base."))
    return {
        "params": comp_params,
        "macs": comp_macs,
        "base_params": base_params,
        "base_macs": base_macs,
        "params_percent": 100.0 * comp_params / base_params,
        "macs_percent": 100.0 * comp_macs / base_macs,
    }

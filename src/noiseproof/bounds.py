"""Relative perturbation boxes |theta* - theta| <= zeta |theta|: the budget of parameter attacks.

Shared by adversarial training (noiseproof.methods.adversarial, awp) and the inference-time
attack (noiseproof.evaluation.attack), so evaluation needs nothing from the methods.
"""

from __future__ import annotations

from collections.abc import Mapping

from torch import Tensor, nn

from noiseproof.chip import Params, split_buffers
from noiseproof.physical import limit, range_of


def relative_box_point(
    clean: Mapping[str, Tensor], offset: Mapping[str, Tensor], *, detach_clean: bool = False
) -> Params:
    """theta* = theta + |theta| * r for a relative offset r (a point of the relative box).

    With the clean parameters attached, d theta* / d theta = 1 + sign(theta) * r: the gradient
    reaches theta through theta* as in the paper (the offset itself carries no gradient).
    A neuron parameter's point is clamped into its physical range (noiseproof.physical.limit;
    weights are returned unclamped, as before).
    """
    out = {}
    for name, theta in clean.items():
        base = theta.detach() if detach_clean else theta
        out[name] = limit(name, base + base.abs() * offset[name])
    return out


def attack_split(model: nn.Module, params: Mapping[str, Tensor]) -> tuple[Params, Params]:
    """(the on-chip tensors a parameter attack moves, the on-chip tensors it leaves as they are).

    Moved: every parameter, and every on-chip buffer holding a neuron parameter (a name with a
    physical range, noiseproof.physical.range_of: snntorch's fixed `beta`, `alpha`,
    `threshold`, the built-in spiking models' `tau_mem`, `threshold`, `tau_adapt`,
    `adaptation` when not learnt): a chip perturbs them as it does the weights, and their
    gradient reaches the attack through the forward. Left as they are: the other buffers
    (BatchNorm running statistics, which a training-mode forward updates in place).
    """
    weights, buffers = split_buffers(model, params)
    neuron = {name: t for name, t in buffers.items() if range_of(name) is not None}
    fixed = {name: t for name, t in buffers.items() if name not in neuron}
    return {**weights, **neuron}, fixed

"""Relative perturbation boxes |theta* - theta| <= zeta |theta|: the budget of parameter attacks.

Shared by adversarial training (noiseproof.methods.adversarial, awp) and the inference-time
attack (noiseproof.evaluation.attack), so evaluation needs nothing from the methods.
"""

from __future__ import annotations

from collections.abc import Mapping

from torch import Tensor

from noiseproof.chip import Params


def relative_box_point(
    clean: Mapping[str, Tensor], offset: Mapping[str, Tensor], *, detach_clean: bool = False
) -> Params:
    """theta* = theta + |theta| * r for a relative offset r (a point of the relative box).

    With the clean parameters attached, d theta* / d theta = 1 + sign(theta) * r: the gradient
    reaches theta through theta* as in the paper (the offset itself carries no gradient).
    """
    out = {}
    for name, theta in clean.items():
        base = theta.detach() if detach_clean else theta
        out[name] = base + base.abs() * offset[name]
    return out

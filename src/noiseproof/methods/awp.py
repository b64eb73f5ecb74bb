"""Adversarial weight perturbation (Wu, Xia & Wang, NeurIPS 2020), the baseline of Buechel 2022."""

from __future__ import annotations

from typing import ClassVar, Literal

import torch
from pydantic import Field
from torch import Tensor

from noiseproof.ascent import sign_ascent
from noiseproof.bounds import attack_split, relative_box_point
from noiseproof.chip import Params, scratch_buffers
from noiseproof.methods.base import Method, StepContext, methods
from noiseproof.physical import limit


def layer_l2_ascent(
    clean: Params, objective, *, gamma: float, n_steps: int, buffers: Params
) -> Params:
    """Wu et al.'s layer-wise step v_l += gamma/n * ||w_l|| * g_l/||g_l||, ||v_l|| <= gamma*||w_l||.

    Starts at v = 0; each of the n_steps ascent steps moves every tensor along its normalised
    gradient of `objective` at w + v, then projects v_l back onto the ball of radius
    gamma * ||w_l||. A neuron parameter's point w + v is clamped into its physical range
    (noiseproof.physical.limit) wherever it is used. Returns the perturbations v, detached.
    """
    theta = {name: t.detach() for name, t in clean.items()}
    delta = {name: torch.zeros_like(t) for name, t in theta.items()}
    for _ in range(n_steps):
        for v in delta.values():
            v.requires_grad_(True)
        point = {**buffers, **{n: limit(n, theta[n] + delta[n]) for n in theta}}
        grads = torch.autograd.grad(objective(point), list(delta.values()), allow_unused=True)
        with torch.no_grad():
            for (name, v), g in zip(list(delta.items()), grads, strict=True):
                v = v.detach()
                radius = gamma * theta[name].norm()
                if g is not None:  # tests on the device (torch.where): no host synchronisation
                    g_norm = g.norm()
                    step = radius / n_steps / g_norm
                    v.add_(g * torch.where(g_norm > 0, step, torch.zeros_like(step)))
                    norm = v.norm()
                    v.mul_(torch.where(norm > radius, radius / norm, torch.ones_like(norm)))
                delta[name] = v
    return {name: v.detach() for name, v in delta.items()}


@methods.register("awp")
class AWP(Method):
    """Adversarial weight perturbation (Wu et al. 2020): CE(f(x; theta + v*), y), v* ascends CE.

    Per batch, v* maximises the task loss near theta; the gradient of CE(f(x; theta + v*), y)
    at the perturbed point is applied to theta (v* held fixed, as in the paper's "perturb,
    step, restore"). box="relative" (default) is Buechel et al. 2022's adaptation to their
    relative box |v| <= gamma * |theta|, searched by projected sign ascent with step
    gamma * |theta| / n_steps from theta; box="layer_l2" is Wu et al.'s original layer-wise
    ||v_l|| <= gamma * ||theta_l||. gamma 0.1 as in Buechel et al.; one ascent step as in
    Wu et al. (n_steps is our option). On-chip neuron parameters (spiking models) are perturbed
    with the weights, within their physical ranges (bounds.attack_split, physical.limit).
    """

    precisions: ClassVar[tuple[str, ...]] = ("fp32", "bf16")
    precision_note: ClassVar[str] = "its inner gradients would underflow in fp16 unscaled"

    gamma: float = Field(
        0.1, gt=0.0, le=10.0, allow_inf_nan=False, description="relative perturbation budget"
    )
    n_steps: int = Field(1, ge=1, le=1000, description="ascent steps of the weight attack")
    box: Literal["relative", "layer_l2"] = Field(
        "relative", description="'relative' |v|<=gamma|theta| or Wu's 'layer_l2'"
    )

    def terms(self, ctx: StepContext, x: Tensor, y: Tensor) -> dict[str, Tensor]:
        """{'task': task loss of the forward through theta + stopgrad(v*)}."""
        params, on_chip_buffers = attack_split(ctx.model, ctx.params)
        buffers = {**scratch_buffers(ctx.model), **on_chip_buffers}

        def objective(point: Params) -> Tensor:
            return ctx.task.loss(ctx.forward(point, x), y)

        if self.box == "relative":
            offset = sign_ascent(
                params,
                objective,
                zeta=self.gamma,
                n_steps=self.n_steps,
                initial_std=0.0,
                generator=ctx.generator,
                buffers=buffers,
            )
            perturbed = relative_box_point(params, offset, detach_clean=True)
        else:
            delta = layer_l2_ascent(
                params, objective, gamma=self.gamma, n_steps=self.n_steps, buffers=buffers
            )
            perturbed = {n: limit(n, t.detach() + delta[n]) for n, t in params.items()}
        point = {name: t + (perturbed[name] - t).detach() for name, t in params.items()}
        return {"task": ctx.task.loss(ctx.forward({**on_chip_buffers, **point}, x), y)}

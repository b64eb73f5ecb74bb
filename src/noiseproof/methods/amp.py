"""Adversarial model perturbation, AMP (Zheng, Zhang & Mao, CVPR 2021; arXiv:2010.04925).

AMP minimises the "AMP loss", the empirical risk at the worst point of an L2 ball of radius
epsilon around the parameters (paper, the AMP loss and its Algorithm 1):

    J_AMP(theta) = E_B  max_{||Delta||_2 <= epsilon}  J_B(theta + Delta)

approximated per mini-batch B by N steps of projected gradient ascent from Delta = 0 with step
size zeta, after which the gradient at theta + Delta updates theta:

    Delta_0 = 0
    Delta_n = P_eps(Delta_{n-1} + zeta * grad J_B(theta + Delta_{n-1})),  n = 1 .. N
    P_eps(D) = D * min(1, epsilon / ||D||_2)
    theta  <- theta - eta * grad J_B(theta + Delta_N)      (the trainer's optimiser step)

||.||_2 is the norm of the whole perturbation vector (all on-chip tensors together), as in the
paper's ball B(0; epsilon); the authors' released optimiser (amp.py) clips each parameter
tensor to its own ball of radius epsilon instead, here `ball="per_tensor"`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import ClassVar, Literal

import torch
from pydantic import Field
from torch import Tensor

from noiseproof.bounds import attack_split
from noiseproof.chip import Params, scratch_buffers, straight_through
from noiseproof.methods.base import Method, StepContext, methods
from noiseproof.physical import limit

Ball = Literal["global", "per_tensor"]


def _shrink(tensors: list[Tensor], radius: float) -> None:
    """Scale `tensors` in place by min(1, radius / ||tensors||_2), their joint L2 norm, without
    reading the norm back to the host (a device-side where)."""
    norm = torch.stack([t.norm().float() for t in tensors]).norm()
    bound = torch.as_tensor(radius, dtype=norm.dtype, device=norm.device)
    scale = torch.where(norm > bound, bound / norm, torch.ones_like(norm))
    for t in tensors:
        t.mul_(scale.to(t.dtype))


def project(delta: Mapping[str, Tensor], epsilon: float, ball: Ball = "global") -> None:
    """P_eps in place: `delta` scaled back onto the L2 ball of radius epsilon when outside it.

    ball="global": one ball for the whole vector (all tensors of `delta` together, the paper's
    B(0; epsilon)); ball="per_tensor": each tensor on its own ball (the authors' amp.py).
    """
    if not delta:
        return
    if ball == "global":
        _shrink(list(delta.values()), epsilon)
    else:
        for t in delta.values():
            _shrink([t], epsilon)


def amp_ascent(
    clean: Mapping[str, Tensor],
    objective: Callable[[Params], Tensor],
    *,
    epsilon: float,
    inner_lr: float,
    n_steps: int,
    ball: Ball = "global",
    buffers: Mapping[str, Tensor] | None = None,
) -> Params:
    """Delta_N of AMP's inner maximisation: n_steps of projected gradient ascent from 0.

    Each step Delta <- P_eps(Delta + inner_lr * d objective / d theta at theta + Delta) (see
    the module docstring); `objective(point)` is evaluated at {**buffers, theta + Delta}, theta
    detached. A neuron parameter's point is clamped into its physical range
    (noiseproof.physical.limit) wherever it is used; its gradient is 0 beyond a bound. A tensor
    the objective does not use keeps Delta = 0 until the projection. Returns Delta, detached.
    """
    extra = dict(buffers or {})
    theta = {name: t.detach() for name, t in clean.items()}
    delta = {name: torch.zeros_like(t) for name, t in theta.items()}
    for _ in range(n_steps):
        leaves = {name: d.requires_grad_(True) for name, d in delta.items()}
        point = {**extra, **{n: limit(n, theta[n] + leaves[n]) for n in theta}}
        grads = torch.autograd.grad(objective(point), list(leaves.values()), allow_unused=True)
        with torch.no_grad():
            delta = {name: d.detach() for name, d in leaves.items()}
            for d, g in zip(delta.values(), grads, strict=True):
                if g is not None:
                    d.add_(g, alpha=inner_lr)
            project(delta, epsilon, ball)
    return delta


@methods.register("amp")
class AMP(Method):
    """Adversarial model perturbation (Zheng et al. 2021): task loss at the worst theta + Delta.

    loss 'task' = J_B(theta + stopgrad(Delta*)), Delta* ~ argmax_{||Delta||_2 <= epsilon}
    J_B(theta + Delta), found per batch by `inner_steps` (the paper's N) steps of gradient
    ascent on the task loss with step size `inner_lr` (zeta) from Delta = 0, each step projected
    back onto the L2 ball of radius `epsilon` over all on-chip tensors together (module
    docstring). The gradient of 'task' is the gradient at the perturbed point, applied to theta
    itself (the paper's "compute the gradient at theta + Delta, update theta"): Delta is never
    written into the weights, so momentum and weight decay act on theta, as after a literal
    perturb / restore. Defaults epsilon 0.5, inner_lr 1, inner_steps 1: those of the authors'
    released training script (hiyouga/AMP-Regularizer, main.py: PreActResNet18, CIFAR-10).
    `ball="per_tensor"` clips each tensor to its own ball, as the released amp.py does.
    epsilon = 0 skips the ascent: the step is exactly standard training.
    In noiseproof the perturbation acts on the on-chip tensors (ctx.params), neuron parameters
    of spiking models included, each point kept within their physical ranges
    (bounds.attack_split, physical.limit); digital parameters are left as they are. The probe
    forwards run on scratch copies of the buffers, so BatchNorm statistics take one update a
    step, as in standard training (the released code's probe forwards update them too). No
    random draw is made (Delta starts at 0).
    """

    precisions: ClassVar[tuple[str, ...]] = ("fp32", "bf16")
    precision_note: ClassVar[str] = "its inner gradients would underflow in fp16 unscaled"

    epsilon: float = Field(
        0.5, ge=0.0, allow_inf_nan=False, description="L2 radius of the perturbation ball"
    )
    inner_lr: float = Field(
        1.0, gt=0.0, allow_inf_nan=False, description="step size zeta of the inner ascent"
    )
    inner_steps: int = Field(1, ge=1, le=1000, description="ascent steps N per batch")
    ball: Ball = Field(
        "global", description="'global' one ball for all tensors (paper) or 'per_tensor'"
    )

    def terms(self, ctx: StepContext, x: Tensor, y: Tensor) -> dict[str, Tensor]:
        """{'task': task loss at theta + stopgrad(Delta*), its gradient applied to theta}."""
        if self.epsilon == 0:
            return {"task": ctx.task.loss(ctx.forward(ctx.params, x), y)}
        params, on_chip_buffers = attack_split(ctx.model, ctx.params)
        probe_buffers = scratch_buffers(ctx.model)  # every buffer, on-chip ones included

        def objective(point: Params) -> Tensor:
            return ctx.task.loss(ctx.forward(point, x), y)

        with torch.enable_grad():
            delta = amp_ascent(
                params,
                objective,
                epsilon=self.epsilon,
                inner_lr=self.inner_lr,
                n_steps=self.inner_steps,
                ball=self.ball,
                buffers=probe_buffers,
            )
        perturbed = {n: limit(n, t.detach() + delta[n]) for n, t in params.items()}
        point = straight_through(params, perturbed)
        return {"task": ctx.task.loss(ctx.forward({**on_chip_buffers, **point}, x), y)}

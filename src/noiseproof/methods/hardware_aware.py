"""Hardware-aware training (Drolet et al. 2023, arXiv 2305.18495) for any noise model.

Every forward pass draws a new hardware realisation w_hw of the on-chip parameters and is
computed through it straight-through ("reparametrisation"):

    w_st = w + stopgrad(w_hw - w)        (forward sees w_hw, the gradient reaches w)

Weights that sit on a device drawn stuck are dropped from the update ("dropout"): in the
authors' code their values are restored after the optimiser step (`drop_mode="restore"`, the
default; Adam's moments still see their gradient); `drop_mode="gradient"` zeroes their gradient
instead. Which weights are stuck comes from `NoiseModel.sample_with_faults`; a model without
stuck devices reports none, so the method works with every noise model.

A regularisation term is added: weight decay 0.5 * lambda * sum(w^2) over the on-chip
parameters (lambda = 1e-4; the same gradient as Adam's coupled weight_decay=1e-4 of the
authors' code), or the authors' ELBO/KL variant (off by default):

    KL = sum over elements of 0.5 * (sigma^2 + w_st^2 - 1 - log sigma^2),

the KL divergence of N(w_st, sigma^2) from the N(0, 1) prior, weighted by `kl_weight` (default
1 / (875 * 256): the authors' 1 / (training points * batch size) on moons). The authors derive
sigma in closed form from their crossbar model; here sigma is the per-element standard deviation
of `kl_samples` extra hardware draws (our choice, so that any noise model works); elements with
sigma = 0 (ideal ones) carry no distribution and are left out of the sum.

On a spiking model, on-chip neuron parameters (a name with a physical range, noiseproof.physical:
`beta`, `threshold`, `tau_mem`..., 0-d or per-neuron) are drawn, used straight-through and
dropped when stuck like the weights, but left out of the regularisation: a decay factor or time
constant pulled towards 0, or given an N(0, 1) prior, has no meaning (our choice).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any, Literal, cast

import torch
from pydantic import Field, PrivateAttr
from torch import Tensor
from torch.optim.optimizer import register_optimizer_step_post_hook

from noiseproof.chip import Params, detached, straight_through
from noiseproof.methods.base import Method, OptionalNoise, StepContext, methods
from noiseproof.methods.common import training_noise
from noiseproof.noise.base import NoiseModel
from noiseproof.physical import range_of
from noiseproof.training.distributed import any_rank


@methods.register("hardware_aware")
class HardwareAware(Method):
    """Hardware-aware training (Drolet et al. 2023): a new chip per forward, stuck weights dropped.

    Forward through w + stopgrad(w_hw - w) with w_hw a new draw of the noise model; weights on
    stuck devices are left unchanged by the step; plus weight decay (or the KL variant).
    """

    noise: OptionalNoise = Field(None, description="noise model (default: the experiment's)")
    level: float | None = Field(
        None, ge=0.0, allow_inf_nan=False, description="training level (default: the model's own)"
    )
    drop_stuck: bool = Field(True, description="leave weights on stuck devices out of the update")
    drop_mode: Literal["restore", "gradient"] = Field(
        "restore", description="restore stuck weights after the step (authors) or zero their grad"
    )
    regularization: Literal["weight_decay", "kl", "none"] = Field(
        "weight_decay", description="weight decay (default) or the Bayesian KL (ELBO) variant"
    )
    weight_decay: float = Field(
        1e-4, ge=0.0, allow_inf_nan=False, description="lambda of 0.5 * lambda * sum(w^2)"
    )
    kl_weight: float = Field(
        1.0 / (875 * 256), ge=0.0, allow_inf_nan=False, description="weight of the KL term"
    )
    kl_samples: int = Field(8, ge=2, description="hardware draws estimating sigma for the KL")

    _frozen: dict[int, list[tuple[Tensor, Tensor, Tensor]]] = PrivateAttr(default_factory=dict)

    def terms(self, ctx: StepContext, x: Tensor, y: Tensor) -> dict[str, Tensor]:
        """{'task': loss through one fresh chip, and 'weight_decay' or 'kl' unless disabled}."""
        noise = training_noise(self.noise, self.level, ctx, "hardware_aware")
        clean = detached(ctx.params)
        chip, stuck = noise.sample_with_faults(clean, ctx.generator)
        used = straight_through(ctx.params, chip)
        if self.drop_stuck and stuck:
            pending = self._frozen.get(id(ctx))
            if self.drop_mode == "restore" and pending is not None:
                pending[:] = [(ctx.params[n], mask, clean[n].clone()) for n, mask in stuck.items()]
            else:
                for name, mask in stuck.items():
                    used[name] = torch.where(mask, chip[name], used[name])
        out = {"task": ctx.task.loss(ctx.forward(used, x), y)}
        weights = [name for name in ctx.params if range_of(name) is None]
        if self.regularization == "weight_decay" and self.weight_decay > 0 and weights:
            squares = cast(Tensor, sum(ctx.params[name].square().sum() for name in weights))
            out["weight_decay"] = 0.5 * self.weight_decay * squares
        elif self.regularization == "kl" and weights:
            used_weights = {name: used[name] for name in weights}
            kl = self.kl_divergence(noise, clean, used_weights, ctx.generator)
            out["kl"] = self.kl_weight * kl
        return out

    def kl_divergence(
        self, noise: NoiseModel, clean: Params, used: Params, generator: torch.Generator
    ) -> Tensor:
        """sum 0.5 * (sigma^2 + mu^2 - 1 - log sigma^2) with mu = used weights, sigma estimated."""
        draws = [noise.sample(clean, generator) for _ in range(self.kl_samples)]
        total = torch.zeros((), device=next((mu.device for mu in used.values()), None))
        for name, mu in used.items():  # masked by torch.where: no host synchronisation
            stack = torch.stack([d[name] for d in draws])
            keep = (stack != stack[0]).any(dim=0)
            sigma = stack.double().std(dim=0).to(mu.dtype)
            var = torch.where(keep, sigma.square(), torch.ones_like(sigma))
            term = 0.5 * (var + mu.square() - 1 - var.log())
            total = total + torch.where(keep, term, torch.zeros_like(term)).sum()
        return total

    @contextlib.contextmanager
    def attached(self, ctx: StepContext) -> Iterator[None]:
        """With drop_mode='restore': after each optimiser step over these parameters, put the
        weights drawn stuck in that step back to their values before it (removed on exit)."""
        if not (self.drop_stuck and self.drop_mode == "restore"):
            yield
            return
        pending: list[tuple[Tensor, Tensor, Tensor]] = []
        owned = {id(p) for p in ctx.params.values()}

        def restore(optimizer: torch.optim.Optimizer, args: Any, kwargs: Any) -> None:
            mine = any(id(p) in owned for g in optimizer.param_groups for p in g["params"])
            if not mine or not pending:
                return
            with torch.no_grad():
                for param, mask, values in pending:  # under torchrun: stuck on any rank's chip
                    param.copy_(torch.where(any_rank(mask), values, param))
            pending.clear()

        self._frozen[id(ctx)] = pending
        handle = register_optimizer_step_post_hook(restore)
        try:
            yield
        finally:
            handle.remove()
            self._frozen.pop(id(ctx), None)

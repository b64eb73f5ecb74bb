"""Dropout as a method: inputs of chosen layers dropped during training, the model left unedited."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import torch
from pydantic import Field
from torch import Tensor

from noiseproof.methods.base import Method, StepContext, methods


@methods.register("dropout")
class Dropout(Method):
    """Dropout (Srivastava et al. 2014), the p = 0.3 baseline of Buechel et al. 2022.

    During training a forward pre-hook zeroes each input element of the chosen on-chip layers
    with probability p and scales the rest by 1/(1-p). The first on-chip layer (which sees the
    network input) is left alone, so on an MLP this is dropout after every hidden activation.
    Masks are drawn from the training generator; the hooks are removed after training.
    """

    p: float = Field(0.3, ge=0.0, lt=1.0, allow_inf_nan=False, description="drop probability")
    layers: tuple[str, ...] = Field(("Linear",), description="module classes whose inputs drop")

    def terms(self, ctx: StepContext, x: Tensor, y: Tensor) -> dict[str, Tensor]:
        """{'task': task loss of the forward with dropped activations}."""
        return {"task": ctx.task.loss(ctx.forward(ctx.params, x), y)}

    @contextlib.contextmanager
    def attached(self, ctx: StepContext) -> Iterator[None]:
        """Register the dropout pre-hooks on every chosen layer but the first; always removed."""
        modules = dict(ctx.model.named_modules())
        owners = list(dict.fromkeys(name.rpartition(".")[0] for name in ctx.params))
        targets = [modules[m] for m in owners[1:] if type(modules[m]).__name__ in self.layers]
        keep = 1.0 - self.p

        def drop(module, inputs):
            if not module.training or self.p == 0:
                return None
            (first, *rest) = inputs
            gen = ctx.generator  # drawn on the generator's device (the job's), then no-op move
            mask = torch.rand(first.shape, generator=gen, device=gen.device) < keep
            mask = mask.to(first.device)
            return (first * mask.to(first.dtype) / keep, *rest)

        handles = [module.register_forward_pre_hook(drop) for module in targets]
        try:
            yield
        finally:
            for handle in handles:
                handle.remove()

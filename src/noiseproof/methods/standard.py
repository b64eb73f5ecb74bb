"""Standard training: the task loss of the clean network, the baseline every paper reports."""

from __future__ import annotations

from torch import Tensor

from noiseproof.methods.base import Method, StepContext, methods


@methods.register("standard")
class Standard(Method):
    """Plain empirical risk minimisation: loss = CE(f(x; theta), y)."""

    def terms(self, ctx: StepContext, x: Tensor, y: Tensor) -> dict[str, Tensor]:
        """{'task': task loss of the clean forward}."""
        return {"task": ctx.task.loss(ctx.forward(ctx.params, x), y)}

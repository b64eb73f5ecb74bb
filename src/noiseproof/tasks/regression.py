"""Regression: real-valued targets, squared/absolute/Huber loss; MSE, MAE and R^2 per chip."""

from __future__ import annotations

from typing import Any, ClassVar, Literal

import torch
import torch.nn.functional as F
from pydantic import Field
from torch import Tensor

from noiseproof.tasks.base import Metric, Task, tasks


def aligned(outputs: Tensor, y: Tensor) -> Tensor:
    """`outputs` shaped like the targets: a [*, B, 1] output for [B] targets loses its last dim."""
    if y.dim() == 1 and outputs.dim() >= 2 and outputs.shape[-1] == 1:
        return outputs.squeeze(-1)
    return outputs


@tasks.register("regression")
class Regression(Task):
    """Real-valued targets [B] or [B, D]; loss mse | l1 | huber; metrics MSE (primary), MAE,
    R^2; an example is reliable when its largest absolute error is within `tolerance`.

    R^2 = 1 - SSE / SST over the whole test set, SST the squared deviations of each target
    column from its own mean (scikit-learn's r2_score with multioutput='variance_weighted').
    """

    loss_kind: Literal["mse", "l1", "huber"] = Field(
        "mse", alias="loss", description="training loss: mse, l1 or huber (delta 1)"
    )
    tolerance: float = Field(
        0.1, gt=0, allow_inf_nan=False, description="largest |error| of a reliable example"
    )

    metrics: ClassVar = (
        Metric("mse", higher_is_better=False),
        Metric("mae", higher_is_better=False),
        Metric("r2", higher_is_better=True),
    )
    sum_names: ClassVar = ("squared_error", "absolute_error", "values", "target", "target_sq")

    def spec(self) -> dict:
        """{'name': 'regression', 'loss': ..., 'tolerance': ...}."""
        return {"name": self.registered_name, **self.model_dump(mode="json", by_alias=True)}

    def check_targets(self, y: Any, name: str) -> None:
        """A floating-point tensor [B] or [B, D]."""
        if not isinstance(y, Tensor) or not y.is_floating_point() or y.dim() not in (1, 2):
            raise TypeError(f"{name} must be a floating-point tensor [N] or [N, D] of targets")

    def check_outputs(self, outputs: Tensor, y: Tensor, name: str) -> None:
        """Outputs [B] or [B, 1] for [B] targets, [B, D] for [B, D] targets."""
        head = y[: len(outputs)]
        if aligned(outputs, head).shape != head.shape:
            raise ValueError(
                f"{name}: regression targets {list(y.shape)} need model outputs of that shape "
                f"(or [B, 1] for [B]), the model gives {list(outputs.shape)}"
            )

    def loss(self, outputs: Tensor, y: Tensor) -> Tensor:
        """Mean squared error, mean absolute error or Huber loss (delta 1) over the batch."""
        outputs = aligned(outputs, y)
        y = y.to(outputs.dtype)
        if self.loss_kind == "l1":
            return F.l1_loss(outputs, y)
        if self.loss_kind == "huber":
            return F.huber_loss(outputs, y)
        return F.mse_loss(outputs, y)

    def divergence(self, outputs: Tensor, reference: Tensor, y: Tensor) -> Tensor:
        """Mean squared difference of the two outputs."""
        return F.mse_loss(outputs, reference)

    def hits(self, outputs: Tensor, y: Tensor) -> Tensor:
        """|error| <= tolerance (every output of an example within it)."""
        error = (aligned(outputs, y) - y).abs()
        error = error.amax(-1) if y.dim() == 2 else error
        return error <= self.tolerance

    def sums(self, outputs: Tensor, y: Tensor) -> Tensor:
        """(sum of squared errors, of absolute errors, number of values, sum of targets, sum
        of squared targets) per target column: [*chips, 5 * D]."""
        error = aligned(outputs, y).double() - y.double()
        columns = y.double() if y.dim() == 2 else y.double().unsqueeze(-1)
        error = error if y.dim() == 2 else error.unsqueeze(-1)
        lead = error.shape[:-2]
        parts = [
            error.square().sum(-2),
            error.abs().sum(-2),
            torch.full_like(error[..., 0, :], len(y)),
            columns.sum(0).expand(*lead, -1),
            columns.square().sum(0).expand(*lead, -1),
        ]
        return torch.cat(parts, dim=-1)

    def chip_metrics(self, sums: Tensor) -> dict[str, Tensor]:
        """mse = SSE / n, mae = SAE / n over every value; r2 = 1 - SSE / SST."""
        sse, sae, n, total, squares = sums.unflatten(-1, (5, -1)).unbind(-2)
        sst = squares - total.square() / n
        return {
            "mse": sse.sum(-1) / n.sum(-1),
            "mae": sae.sum(-1) / n.sum(-1),
            "r2": 1.0 - sse.sum(-1) / sst.sum(-1),
        }

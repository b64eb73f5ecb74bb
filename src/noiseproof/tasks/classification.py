"""Classification: one logit per class (cross-entropy) or one logit for a binary task (BCE)."""

from __future__ import annotations

from typing import Any, ClassVar

import torch
import torch.nn.functional as F
from torch import Tensor

from noiseproof.tasks.base import Metric, Task, tasks


def log_probs(logits: Tensor) -> Tensor:
    """Per-class log-probabilities; a binary logit z gives logsigmoid([-z, z])."""
    if logits.shape[-1] == 1:
        return F.logsigmoid(torch.cat([-logits, logits], dim=-1))
    return F.log_softmax(logits, dim=-1)


def predict(logits: Tensor) -> Tensor:
    """Class index per example: argmax, or logit > 0 for a single binary logit."""
    if logits.shape[-1] == 1:
        return (logits.squeeze(-1) > 0).long()
    return logits.argmax(dim=-1)


def kl_divergence(outputs: Tensor, reference: Tensor) -> Tensor:
    """KL(softmax(reference) || softmax(outputs)), summed over classes, mean over the rows of
    the flattened [units, C] logits (Buechel et al. 2022, eq. 3; a binary logit as [-z, z])."""
    width = 2 if outputs.shape[-1] == 1 else outputs.shape[-1]
    return F.kl_div(
        log_probs(outputs).reshape(-1, width),
        log_probs(reference).reshape(-1, width),
        log_target=True,
        reduction="batchmean",
    )


@tasks.register("classification")
class Classification(Task):
    """Multi-class ([B, C] logits, cross-entropy) or binary ([B, 1] logit, BCE) classification;
    metric: accuracy; an example is reliable when classified right on enough chips."""

    metrics: ClassVar = (Metric("accuracy", higher_is_better=True, percent=True),)
    sum_names: ClassVar = ("correct", "examples")

    def check_targets(self, y: Any, name: str) -> None:
        """Class indices: a 1-d integer tensor."""
        if not isinstance(y, Tensor) or y.dim() != 1 or y.is_floating_point() or y.is_complex():
            raise TypeError(f"{name} must be a 1-d integer tensor of class indices")

    def check_outputs(self, outputs: Tensor, y: Tensor, name: str) -> None:
        """Logits [B, C] (C > 1) or [B, 1] (on the first B examples), every label < C."""
        if outputs.dim() != 2:
            raise ValueError(
                f"{name}: classification needs [B, classes] logits for [B] class indices, the "
                f"model gives {list(outputs.shape)} (a sequence output needs task "
                "token_classification or language_model and [B, T] targets)"
            )
        classes = max(outputs.shape[-1], 2)
        if len(y) and (int(y.min()) < 0 or int(y.max()) >= classes):
            raise ValueError(
                f"{name} holds labels outside [0, {classes}): the model has "
                f"{outputs.shape[-1]} output(s) (largest label {int(y.max())})"
            )

    def loss(self, outputs: Tensor, y: Tensor) -> Tensor:
        """Cross-entropy for [B, C>1] logits; BCE-with-logits for [B, 1] (binary, one logit)."""
        if outputs.shape[-1] == 1:
            return F.binary_cross_entropy_with_logits(outputs.squeeze(-1), y.to(outputs.dtype))
        return F.cross_entropy(outputs, y)

    def divergence(self, outputs: Tensor, reference: Tensor, y: Tensor) -> Tensor:
        """KL(softmax(reference) || softmax(outputs)), mean over the batch."""
        return kl_divergence(outputs, reference)

    def hits(self, outputs: Tensor, y: Tensor) -> Tensor:
        """Whether each example's predicted class is its label."""
        return predict(outputs) == y

    def sums(self, outputs: Tensor, y: Tensor) -> Tensor:
        """(examples right, examples)."""
        right = self.hits(outputs, y).sum(-1, dtype=torch.float64)
        return torch.stack([right, torch.full_like(right, len(y))], dim=-1)

    def chip_metrics(self, sums: Tensor) -> dict[str, Tensor]:
        """accuracy = right / examples."""
        return {"accuracy": sums[..., 0] / sums[..., 1]}

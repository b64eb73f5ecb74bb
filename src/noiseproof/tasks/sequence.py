"""Sequence tasks: a label per token (token classification) and next-token prediction
(language model), both on [B, T, C] logits and [B, T] targets with padding ignored."""

from __future__ import annotations

from typing import Any, ClassVar

import torch
import torch.nn.functional as F
from pydantic import Field
from torch import Tensor

from noiseproof.tasks.base import Metric, Task, tasks

IGNORE_INDEX = -100
"""The target of a token that counts nowhere (PyTorch's and Hugging Face's padding label)."""


class TokenTask(Task):
    """What both sequence tasks share: [B, T] integer targets, [B, T, C] logits, a per-token
    cross-entropy with `ignore_index` targets skipped, a token's hit = its argmax is right."""

    ignore_index: int = Field(IGNORE_INDEX, description="target id of tokens that count nowhere")

    def check_targets(self, y: Any, name: str) -> None:
        """A 2-d integer tensor [N, T] of class (token) ids."""
        if not isinstance(y, Tensor) or y.dim() != 2 or y.is_floating_point() or y.is_complex():
            raise TypeError(
                f"{name} must be a 2-d integer tensor [N, T] of per-token targets for task "
                f"{self.registered_name}"
            )

    def check_outputs(self, outputs: Tensor, y: Tensor, name: str) -> None:
        """Logits [B, T, C] for [B, T] targets, every counted target id < C."""
        if outputs.dim() != 3 or outputs.shape[1] != y.shape[1]:
            raise ValueError(
                f"{name}: task {self.registered_name} needs [B, T, classes] logits for "
                f"{list(y.shape)} targets, the model gives {list(outputs.shape)}"
            )
        counted = y[y != self.ignore_index]
        width = outputs.shape[-1]
        if len(counted) and (int(counted.min()) < 0 or int(counted.max()) >= width):
            raise ValueError(
                f"{name} holds target ids outside [0, {width}) (largest {int(counted.max())}, "
                f"smallest {int(counted.min())}): the model has {width} outputs per token"
            )

    def unit_mask(self, y: Tensor) -> Tensor:
        """The tokens whose target is not `ignore_index`."""
        return y != self.ignore_index

    def loss(self, outputs: Tensor, y: Tensor) -> Tensor:
        """Cross-entropy averaged over the counted tokens of the batch."""
        return F.cross_entropy(outputs.flatten(0, -2), y.flatten(), ignore_index=self.ignore_index)

    def divergence(self, outputs: Tensor, reference: Tensor, y: Tensor) -> Tensor:
        """KL(softmax(reference) || softmax(outputs)) per token, summed over the vocabulary,
        averaged over the counted tokens."""
        mask = self.unit_mask(y)
        per_token = F.kl_div(
            F.log_softmax(outputs, dim=-1),
            F.log_softmax(reference, dim=-1),
            log_target=True,
            reduction="none",
        ).sum(-1)
        return (per_token * mask).sum() / mask.sum().clamp(min=1)

    def hits(self, outputs: Tensor, y: Tensor) -> Tensor:
        """Whether each token's most likely id is its target."""
        return outputs.argmax(dim=-1) == y

    sum_names: ClassVar = ("nll", "correct", "tokens")

    def sums(self, outputs: Tensor, y: Tensor) -> Tensor:
        """Per chip: (summed negative log-likelihood, tokens right, tokens counted), float64."""
        mask = self.unit_mask(y)
        target = y.clamp(min=0).expand(outputs.shape[:-1]).unsqueeze(-1)
        picked = outputs.gather(-1, target).squeeze(-1)
        nll = (torch.logsumexp(outputs, dim=-1) - picked).double()
        nll = (nll * mask).sum((-2, -1))
        right = (self.hits(outputs, y) & mask).sum((-2, -1), dtype=torch.float64)
        return torch.stack([nll, right, torch.full_like(right, float(mask.sum()))], dim=-1)


@tasks.register("token_classification")
class TokenClassification(TokenTask):
    """A class per token ([B, T, C] logits, [B, T] targets, `ignore_index` skipped); metrics:
    token accuracy and mean token cross-entropy; reliability per token."""

    metrics: ClassVar = (
        Metric("accuracy", higher_is_better=True, percent=True),
        Metric("cross_entropy", higher_is_better=False),
    )

    def chip_metrics(self, sums: Tensor) -> dict[str, Tensor]:
        """accuracy = right / tokens; cross_entropy = NLL / tokens (nats)."""
        nll, right, tokens = sums.unbind(-1)
        return {"accuracy": right / tokens, "cross_entropy": nll / tokens}


@tasks.register("language_model")
class LanguageModel(TokenTask):
    """Next-token prediction ([B, T, V] logits, [B, T] next-token targets): cross-entropy;
    metrics: perplexity = exp(mean token NLL) (primary) and token accuracy; reliability per
    token (the share of chips on which a token is the most likely next one)."""

    metrics: ClassVar = (
        Metric("perplexity", higher_is_better=False),
        Metric("token_accuracy", higher_is_better=True, percent=True),
    )

    def chip_metrics(self, sums: Tensor) -> dict[str, Tensor]:
        """perplexity = exp(NLL / tokens) (Jelinek et al. 1977); token_accuracy = right / tokens."""
        nll, right, tokens = sums.unbind(-1)
        return {"perplexity": torch.exp(nll / tokens), "token_accuracy": right / tokens}

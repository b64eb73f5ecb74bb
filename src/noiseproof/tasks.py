"""Task loss and prediction for multi-class (one logit per class) and binary (one logit) outputs."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor


def task_loss(logits: Tensor, targets: Tensor) -> Tensor:
    """Cross-entropy for [B, C>1] logits; BCE-with-logits for [B, 1] (binary, one logit)."""
    if logits.shape[-1] == 1:
        return F.binary_cross_entropy_with_logits(logits.squeeze(-1), targets.to(logits.dtype))
    return F.cross_entropy(logits, targets)


def predict(logits: Tensor) -> Tensor:
    """Class index per example: argmax, or logit > 0 for a single binary logit."""
    if logits.shape[-1] == 1:
        return (logits.squeeze(-1) > 0).long()
    return logits.argmax(dim=-1)


def log_probs(logits: Tensor) -> Tensor:
    """Per-class log-probabilities; a binary logit z gives logsigmoid([-z, z])."""
    if logits.shape[-1] == 1:
        return F.logsigmoid(torch.cat([-logits, logits], dim=-1))
    return F.log_softmax(logits, dim=-1)

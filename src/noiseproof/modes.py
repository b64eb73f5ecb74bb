"""Train/eval mode of a module tree: switch it for a while, then put every submodule back."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

from torch import nn


@contextlib.contextmanager
def kept_modes(model: nn.Module) -> Iterator[nn.Module]:
    """Restore each submodule's own `training` flag on exit (a frozen BatchNorm stays in eval
    mode inside a model in train mode); the body may switch modes freely."""
    modes = [(module, module.training) for module in model.modules()]
    try:
        yield model
    finally:
        for module, training in modes:
            module.training = training


@contextlib.contextmanager
def evaluating(model: nn.Module) -> Iterator[nn.Module]:
    """`model.eval()` for the body, then every submodule back in the mode it was in."""
    with kept_modes(model):
        model.eval()
        yield model


def frozen_modules(model: nn.Module) -> list[nn.Module]:
    """Submodules a user froze: in eval mode inside a model that is in train mode (e.g. a
    BatchNorm with fixed statistics). None when the whole model is in eval mode."""
    if not model.training:
        return []
    return [module for module in model.modules() if not module.training]


def train_mode(model: nn.Module, frozen: list[nn.Module]) -> None:
    """`model.train()`, the `frozen` submodules kept in eval mode."""
    model.train()
    for module in frozen:
        module.training = False

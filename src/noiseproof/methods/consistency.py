"""Consistency regularisation (Hou, Zhang, Wang, Wu, MLST 2024): noisy features held to clean ones.

Loss = CE(f(x; theta_n), y) + lambda * D(features(x; theta_n), features(x; theta)), where
theta_n = theta + stopgrad(noise(theta) - theta) is one fresh draw of the configured noise model
(as in forward noise training) and the features are intermediate-layer outputs of the same module
run twice on the same batch. The paper does not publish which layers, which distance, or whether
the clean branch gets gradients: these are options here, with our defaults (every block output,
MSE, clean branch detached).
"""

from __future__ import annotations

import contextlib
import fnmatch
from collections.abc import Iterator
from typing import Any, Literal, Self

import torch
import torch.nn.functional as F
from pydantic import Field, field_validator, model_validator
from torch import Tensor, nn

from noiseproof.chip import ChipSelection, detached, scratch_buffers, straight_through
from noiseproof.errors import NoiseproofError
from noiseproof.methods.base import Method, OptionalNoise, StepContext, methods
from noiseproof.methods.noise_injection import training_noise
from noiseproof.tasks import log_probs, task_loss

OUTPUT = "output"
"""The `layers` entry naming the network's output (the logits) rather than a submodule."""

BLOCKS = "blocks"
"""The `layers` entry standing for every block output (see `block_names`), the default."""

CONTAINERS = (nn.Sequential, nn.ModuleList, nn.ModuleDict)


def block_names(model: nn.Module) -> list[str]:
    """Names of the model's blocks, in registration order (our definition; the paper has none).

    Starting at the root, containers (nn.Sequential, nn.ModuleList, nn.ModuleDict, and the root
    module itself) are opened; every other module reached is a candidate block (a ResNet
    BasicBlock, a Conv2d, a Linear, a ReLU...). A block is a candidate holding weights of a
    Linear or Conv layer (the default chip selection, whatever the experiment's selection is);
    the last one is left out because its output is the logits (select those with
    layers=['output'] or distance='kl'). On an MLP the blocks are the hidden Linear layers; on
    the CIFAR ResNets, the stem convolution and every BasicBlock.
    """
    weights = set(ChipSelection().names(model))
    found: list[str] = []

    def holds_weights(prefix: str, module: nn.Module) -> bool:
        return any(
            (f"{prefix}.{n}" if prefix else n) in weights for n, _ in module.named_parameters()
        )

    def visit(prefix: str, module: nn.Module, is_root: bool) -> None:
        if is_root or isinstance(module, CONTAINERS):
            for name, child in module.named_children():
                visit(f"{prefix}.{name}" if prefix else name, child, False)
        elif holds_weights(prefix, module):
            found.append(prefix)

    visit("", model, True)
    return found[:-1]


def resolve_layers(model: nn.Module, patterns: tuple[str, ...] | None) -> list[str]:
    """Module names whose outputs are compared: the blocks, or the modules matching `patterns`.

    Patterns are shell globs (fnmatch) over the names of `model.named_modules()`, e.g. '3',
    'features.*', '*.conv2'; 'output' stands for the logits and 'blocks' for every block output.
    None means ['blocks'].
    """
    modules = [name for name, _ in model.named_modules() if name]
    chosen: list[str] = []
    for pattern in patterns or (BLOCKS,):
        if pattern == BLOCKS:
            matched = block_names(model)
            if not matched:
                raise NoiseproofError(
                    f"consistency: {type(model).__name__} has no block before its output layer; "
                    "name the layers to compare with 'layers'"
                )
        elif pattern == OUTPUT:
            matched = [OUTPUT]
        else:
            matched = [n for n in modules if fnmatch.fnmatchcase(n, pattern)]
        if not matched:
            shown = ", ".join(modules[:12]) + (", ..." if len(modules) > 12 else "")
            raise NoiseproofError(
                f"consistency: layer pattern {pattern!r} matches no module of "
                f"{type(model).__name__} (modules: {shown})"
            )
        chosen += [n for n in matched if n not in chosen]
    return chosen


@contextlib.contextmanager
def captured(model: nn.Module, names: list[str]) -> Iterator[dict[str, list[Tensor]]]:
    """Forward hooks recording the outputs of the named modules; always removed on exit.

    Yields {name: [output of each call, in call order]}; the caller empties the lists between
    forwards. A module that returns something other than a tensor is refused.
    """
    modules = dict(model.named_modules())
    store: dict[str, list[Tensor]] = {name: [] for name in names if name != OUTPUT}
    handles = []

    def recorder(name: str):
        def hook(module: nn.Module, inputs: Any, output: Any) -> None:
            if not isinstance(output, Tensor):
                raise NoiseproofError(
                    f"consistency: module {name!r} returns {type(output).__name__}, not a tensor"
                )
            store[name].append(output)

        return hook

    try:
        for name in store:
            handles.append(modules[name].register_forward_hook(recorder(name)))
        yield store
    finally:
        for handle in handles:
            handle.remove()


def feature_distance(noisy: Tensor, clean: Tensor, kind: str) -> Tensor:
    """Distance between two batches of features [B, ...] (means over the batch).

    mse: mean over all elements of (noisy - clean)^2; cosine: mean over examples of
    1 - cos(noisy_i, clean_i) on flattened features; kl: KL(softmax(clean) || softmax(noisy))
    on logits, per example summed over classes (a single binary logit z counts as [-z, z]).
    """
    if kind == "mse":
        return F.mse_loss(noisy, clean)
    if kind == "cosine":
        return (1.0 - F.cosine_similarity(noisy.flatten(1), clean.flatten(1), dim=1)).mean()
    return F.kl_div(log_probs(noisy), log_probs(clean), reduction="batchmean", log_target=True)


@methods.register("consistency")
class Consistency(Method):
    """Consistency regularisation (Hou et al. 2024): CE(noisy) + lambda * D(noisy, clean features).

    Per batch: one draw theta_n of the noise model (straight-through, as forward noise training),
    a noisy forward and a clean forward of the same batch; loss terms
    'task' = CE(f(x; theta_n), y) and 'consistency' = lam * mean over the compared layers of
    D(h_l(x; theta_n), h_l(x; theta)). Layers: every block output ('blocks', the default, see
    `block_names`), module-name globs, and 'output' for the logits. D: 'mse' (default),
    'cosine', or 'kl' (on the logits only). The clean branch is detached by default (computed
    without a graph: two forwards, one backward graph); with detach_clean=False it receives
    gradients too. The clean forward runs on scratch copies of the buffers, so BatchNorm
    running statistics move as in forward noise training (our choice). The paper publishes
    none of these settings; all defaults are ours.
    """

    lam: float = Field(
        1.0, ge=0.0, allow_inf_nan=False, description="lambda: weight of the consistency term"
    )
    distance: Literal["mse", "cosine", "kl"] = Field(
        "mse", description="feature distance: mse, cosine (1 - cos), or kl on the logits"
    )
    layers: tuple[str, ...] | None = Field(
        None,
        description="module-name globs, 'blocks' = every block output, 'output' = logits "
        "(default: blocks)",
    )
    detach_clean: bool = Field(True, description="clean branch as a fixed target (no gradient)")
    noise: OptionalNoise = Field(None, description="noise model (default: the experiment's)")
    level: float | None = Field(
        None, ge=0.0, allow_inf_nan=False, description="training level (default: the model's own)"
    )

    @field_validator("layers", mode="before")
    @classmethod
    def _layers(cls, value: Any) -> Any:
        if isinstance(value, str):
            value = [value]
        if value is not None and len(value) == 0:
            raise ValueError("give at least one layer pattern, or leave layers unset for blocks")
        return value

    @model_validator(mode="after")
    def _kl_on_logits(self) -> Self:
        if self.distance == "kl" and self.layers not in (None, (OUTPUT,)):
            raise ValueError("distance 'kl' compares the logits: leave layers unset or ['output']")
        return self

    def compared(self, model: nn.Module) -> list[str]:
        """The module names (and/or 'output') whose outputs this method compares on `model`."""
        if self.distance == "kl":
            return [OUTPUT]
        return resolve_layers(model, self.layers)

    def terms(self, ctx: StepContext, x: Tensor, y: Tensor) -> dict[str, Tensor]:
        """{'task': CE of the noisy forward, 'consistency': lam * mean layer distance}."""
        noise = training_noise(self.noise, self.level, ctx, "consistency")
        noisy_params = straight_through(
            ctx.params, noise.sample(detached(ctx.params), ctx.generator)
        )
        names = self.compared(ctx.model)
        with captured(ctx.model, names) as store:
            noisy_out = ctx.forward(noisy_params, x)
            noisy = {name: store[name][:] for name in store}
            for outputs in store.values():
                outputs.clear()
            clean_params = {**scratch_buffers(ctx.model), **ctx.params}
            with torch.no_grad() if self.detach_clean else contextlib.nullcontext():
                clean_out = ctx.forward(clean_params, x)
            clean = {name: store[name][:] for name in store}
        if OUTPUT in names:
            noisy[OUTPUT], clean[OUTPUT] = [noisy_out], [clean_out]
        distances = [
            feature_distance(a, b, self.distance)
            for name in names
            for a, b in zip(noisy[name], clean[name], strict=True)
        ]
        term = torch.stack(distances).mean()
        return {"task": task_loss(noisy_out, y), "consistency": self.lam * term}

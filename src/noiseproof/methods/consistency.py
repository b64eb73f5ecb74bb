"""Consistency regularisation (Hou, Zhang, Wang, Wu, MLST 2024): noisy features held to clean ones.

Loss = CE(f(x; theta_n), y) + lambda * D(features(x; theta_n), features(x; theta)), where
theta_n = theta + stopgrad(noise(theta) - theta) is one fresh draw of the configured noise model
(as in forward noise training) and the features are intermediate-layer outputs of the same module
run twice on the same batch. Only the abstract is public to us: which layers, which distance,
whether the clean branch gets gradients or is a separate (frozen, pre-trained) teacher, and which
branch the cross-entropy is computed on are options here, with our defaults (every block output,
MSE, the network's own weights detached, CE on the noisy branch). On a spiking network the
features are its spiking layers' spike rates or membrane traces (noiseproof.methods.
spiking_features).
"""

from __future__ import annotations

import contextlib
import fnmatch
from collections.abc import Iterator
from typing import Any, Literal, Self

import torch
import torch.nn.functional as F
from pydantic import Field, PrivateAttr, field_validator, model_validator
from torch import Tensor, nn

from noiseproof.chip import (
    ChipSelection,
    Params,
    chip_params,
    detached,
    hidden_state,
    scratch_buffers,
    straight_through,
)
from noiseproof.errors import NoiseproofError
from noiseproof.methods.base import Method, OptionalNoise, StepContext, methods
from noiseproof.methods.common import training_noise
from noiseproof.methods.spiking_features import (
    SpikingFeature,
    is_spiking_layer,
    layer_feature,
    recording,
    spiking_layers,
)
from noiseproof.tasks import Task, tasks

OUTPUT = "output"
"""The `layers` entry naming the network's output (the logits) rather than a submodule."""

BLOCKS = "blocks"
"""The `layers` entry standing for every block output (see `block_names`), the default."""

SPIKING = "spiking"
"""The `layers` entry standing for every spiking layer (`spiking_layers`), the default on a
spiking network."""

CONTAINERS = (nn.Sequential, nn.ModuleList, nn.ModuleDict)

NORM_EPS = 1e-12
"""Added to ||f_c||^2 in `normalized_mse` (only matters where a clean feature is all zero)."""

CHANNEL_EPS = 1e-5
"""Added to the per-channel variance in `channel_mse`, as BatchNorm's default eps."""


def block_names(model: nn.Module) -> list[str]:
    """Names of the model's blocks, in registration order (our definition; the paper has none).

    Starting at the root, containers (nn.Sequential, nn.ModuleList, nn.ModuleDict, the root
    module itself, and a trunk: a module holding an nn.ModuleList, as transformers keep their
    stack of blocks) are opened; every other module reached is a candidate block (a ResNet
    BasicBlock, a transformer block, a Conv2d, a Linear, a ReLU...). A block is a candidate
    holding weights of a Linear or Conv layer (the default chip selection, whatever the
    experiment's selection is; a tied weight counts wherever it is used); the last one is left
    out because its output is the logits (select those with layers=['output'] or
    distance='kl'). On an MLP the blocks are the hidden Linear layers; on the CIFAR ResNets,
    the stem convolution and every BasicBlock; on a GPT, the blocks of its stack.
    """
    weights = {id(t) for t in chip_params(model, ChipSelection()).values()}
    found: list[str] = []

    def holds_weights(module: nn.Module) -> bool:
        return any(id(p) in weights for p in module.parameters())

    def is_trunk(module: nn.Module) -> bool:
        return any(isinstance(child, nn.ModuleList) for child in module.children())

    def visit(prefix: str, module: nn.Module, is_root: bool) -> None:
        opened = is_root or isinstance(module, CONTAINERS)
        if opened or (is_trunk(module) and holds_weights(module)):
            for name, child in module.named_children():
                visit(f"{prefix}.{name}" if prefix else name, child, False)
        elif holds_weights(module):
            found.append(prefix)

    visit("", model, True)
    return found[:-1]


def resolve_layers(model: nn.Module, patterns: tuple[str, ...] | None) -> list[str]:
    """Module names whose outputs are compared: the blocks, or the modules matching `patterns`.

    Patterns are shell globs (fnmatch) over the names of `model.named_modules()`, e.g. '3',
    'features.*', '*.conv2'; 'output' stands for the logits, 'blocks' for every block output
    and 'spiking' for every spiking layer. None means ['spiking'] on a model with spiking
    layers (snntorch neurons, the built-in LIF layers: see spiking_features), else ['blocks'].
    """
    modules = [name for name, _ in model.named_modules() if name]
    chosen: list[str] = []
    default = (SPIKING,) if spiking_layers(model) else (BLOCKS,)
    for pattern in patterns or default:
        if pattern == SPIKING:
            matched = spiking_layers(model)
        elif pattern == BLOCKS:
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
def captured(
    model: nn.Module, names: list[str], spiking: SpikingFeature = "rates"
) -> Iterator[dict[str, list[Tensor]]]:
    """Forward hooks recording the outputs of the named modules; always removed on exit.

    Yields {name: [output of each call, in call order]}; the caller empties the lists between
    forwards. A module that returns something other than a tensor is refused. A spiking layer
    records each step's spikes or membrane (`spiking`: spiking_features.recording) instead.
    """
    modules = dict(model.named_modules())
    store: dict[str, list[Tensor]] = {name: [] for name in names if name != OUTPUT}
    neurons = [name for name in store if is_spiking_layer(modules[name])]
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
            if name not in neurons:
                handles.append(modules[name].register_forward_hook(recorder(name)))
        with recording(model, neurons, spiking, store):
            yield store
    finally:
        for handle in handles:
            handle.remove()


def feature_distance(
    noisy: Tensor,
    clean: Tensor,
    kind: str,
    task: Task | None = None,
    y: Tensor | None = None,
) -> Tensor:
    """Distance between two batches of features [B, ...] (means over the batch).

    mse: mean over all elements of (noisy - clean)^2 (grows with the features' scale);
    normalized_mse: mean over examples of ||noisy_i - clean_i||^2 / (||clean_i||^2 + NORM_EPS)
    on flattened features (scale-free: the relative error of each example's feature);
    channel_mse: mean over all elements of (noisy - clean)^2 / (var_c + CHANNEL_EPS), var_c the
    variance of the clean feature's channel c (dim 1, as BatchNorm) over the batch and any
    spatial positions (biased, as BatchNorm's batch statistics; [B] counts as one channel);
    cosine: mean over examples of 1 - cos(noisy_i, clean_i) on flattened features;
    kl: the task's divergence of the outputs (noiseproof.tasks; None: classification):
    KL(softmax(clean) || softmax(noisy)) on logits, per example summed over classes (a single
    binary logit z counts as [-z, z]), per counted token for a sequence task (targets `y`),
    the MSE of the outputs for regression.
    """
    if kind == "mse":
        return F.mse_loss(noisy, clean)
    if kind == "normalized_mse":
        error = (noisy - clean).flatten(1).square().sum(1)
        return (error / (clean.flatten(1).square().sum(1) + NORM_EPS)).mean()
    if kind == "channel_mse":
        if clean.dim() == 1:
            noisy, clean = noisy[:, None], clean[:, None]
        dims = [0, *range(2, clean.dim())]
        var = clean.var(dim=dims, correction=0, keepdim=True)
        return ((noisy - clean).square() / (var + CHANNEL_EPS)).mean()
    if kind == "cosine":
        return (1.0 - F.cosine_similarity(noisy.flatten(1), clean.flatten(1), dim=1)).mean()
    # y None is for the tasks that do not read it (classification, regression); the method
    # passes the batch's targets
    return (task or tasks.create("classification")).divergence(noisy, clean, y)  # type: ignore[arg-type]


def layer_features(
    model: nn.Module, outputs: dict[str, list[Tensor]], spiking: SpikingFeature
) -> dict[str, list[Tensor]]:
    """The features compared: `outputs` (per module, the output of each call), with each
    spiking layer's per-step values made one feature (spike rate or membrane trace:
    spiking_features.layer_feature)."""
    modules = dict(model.named_modules())
    return {
        name: layer_feature(values, spiking) if is_spiking_layer(modules[name]) else values
        for name, values in outputs.items()
    }


def taken(store: dict[str, list[Tensor]]) -> dict[str, list[Tensor]]:
    """The outputs recorded so far, per module name; the store's lists are emptied."""
    out = {name: outputs[:] for name, outputs in store.items()}
    for outputs in store.values():
        outputs.clear()
    return out


@methods.register("consistency")
class Consistency(Method):
    """Consistency regularisation (Hou et al. 2024): CE + lambda * D(noisy, clean features).

    Per batch: one draw theta_n of the noise model (straight-through, as forward noise training),
    a noisy forward and a clean forward of the same batch; loss terms
    'task' = CE(f(x; theta_n), y) (ce_on='noisy', default) or CE(f(x; theta), y)
    (ce_on='clean') and 'consistency' = lam * mean over the compared layers of
    D(h_l(x; theta_n), h_l(x; theta_t)). Layers: every block output ('blocks', the default, see
    `block_names`), module-name globs, and 'output' for the logits. D: 'mse' (default),
    'normalized_mse' (per example, relative to the clean feature's squared norm), 'channel_mse'
    (per element, relative to the clean feature's per-channel variance), 'cosine', or 'kl' (on
    the logits only); see `feature_distance`.

    On a spiking network (snntorch neurons, the built-in models' LIF layers, or a module whose
    class sets `spiking_neuron = True`) the default layers are its spiking layers ('spiking'),
    and a compared spiking layer's feature is, over the whole forward, its spike rate (mean
    over time of its spikes, `spiking_features='rates'`, default) or its membrane trace
    ('membrane'): see noiseproof.methods.spiking_features.

    The clean branch theta_t: teacher='self' (default) is the network's current weights,
    detached by default (computed without a graph: two forwards, one backward graph), with
    gradients too if detach_clean=False; teacher='frozen' is a copy of the whole network
    (parameters and buffers) taken when training starts (`attached`) and never updated: to use
    a pre-trained network as the teacher, start training from it (load the checkpoint into the
    model, then train). With ce_on='clean' the network's own clean forward carries the CE (and,
    with teacher='self', supplies the consistency targets, detached unless detach_clean=False);
    the noisy branch then gets gradients from the consistency term only.

    The noisy forward updates the model's BatchNorm running statistics, as in forward noise
    training; every other forward (clean, teacher) runs on scratch copies of the buffers (our
    choice). The paper's abstract publishes none of these settings; all defaults are ours:
    the most literal reading of it (the noisy network's CE plus a plain feature distance to the
    noise-free network, the same weights, as a target).
    """

    lam: float = Field(
        1.0, ge=0.0, allow_inf_nan=False, description="lambda: weight of the consistency term"
    )
    distance: Literal["mse", "normalized_mse", "channel_mse", "cosine", "kl"] = Field(
        "mse",
        description="feature distance: mse, normalized_mse (||f_n - f_c||^2 / ||f_c||^2 per "
        "example), channel_mse (by the clean feature's per-channel variance), cosine "
        "(1 - cos), or kl on the logits",
    )
    layers: tuple[str, ...] | None = Field(
        None,
        description="module-name globs, 'blocks' = every block output, 'spiking' = every "
        "spiking layer, 'output' = logits (default: spiking on a spiking network, else blocks)",
    )
    spiking_features: SpikingFeature = Field(
        "rates",
        description="a spiking layer's feature: rates (mean spikes over time) or membrane "
        "(the membrane potential at every step)",
    )
    detach_clean: bool = Field(True, description="clean branch as a fixed target (no gradient)")
    teacher: Literal["self", "frozen"] = Field(
        "self",
        description="clean branch: self (the current weights) or frozen (a copy of the network "
        "as training starts, e.g. a pre-trained checkpoint being fine-tuned)",
    )
    ce_on: Literal["noisy", "clean"] = Field(
        "noisy", description="cross-entropy on the noisy (default) or the clean forward"
    )
    noise: OptionalNoise = Field(None, description="noise model (default: the experiment's)")
    level: float | None = Field(
        None, ge=0.0, allow_inf_nan=False, description="training level (default: the model's own)"
    )

    _teachers: dict[int, tuple[Params, Params]] = PrivateAttr(default_factory=dict)

    @field_validator("layers", mode="before")
    @classmethod
    def _layers(cls, value: Any) -> Any:
        if isinstance(value, str):
            value = [value]
        if value is not None and len(value) == 0:
            raise ValueError("give at least one layer pattern, or leave layers unset for blocks")
        return value

    @model_validator(mode="after")
    def _consistent_options(self) -> Self:
        if self.distance == "kl" and self.layers not in (None, (OUTPUT,)):
            raise ValueError("distance 'kl' compares the logits: leave layers unset or ['output']")
        if self.teacher == "frozen" and not self.detach_clean:
            raise ValueError("teacher 'frozen' gets no gradient: leave detach_clean true")
        return self

    def compared(self, model: nn.Module) -> list[str]:
        """The module names (and/or 'output') whose outputs this method compares on `model`."""
        if self.distance == "kl":
            return [OUTPUT]
        return resolve_layers(model, self.layers)

    @contextlib.contextmanager
    def attached(self, ctx: StepContext) -> Iterator[None]:
        """With teacher='frozen': copy the network's parameters and buffers (the teacher) as
        training starts; dropped on exit. Nothing is installed on the model."""
        if self.teacher != "frozen":
            yield
            return
        state = hidden_state(ctx.model)
        params = {name: p.detach().clone() for name, p in ctx.model.named_parameters()}
        buffers = {n: b.clone() for n, b in ctx.model.named_buffers() if n not in state}
        self._teachers[id(ctx)] = (params, buffers)
        try:
            yield
        finally:
            self._teachers.pop(id(ctx), None)

    def teacher_params(self, ctx: StepContext) -> Params:
        """The tensors of the clean branch's forward: the frozen copy (fresh copies of its
        buffers, which a training-mode forward updates in place) or the current weights."""
        if self.teacher == "self":
            return {**scratch_buffers(ctx.model), **ctx.params}
        if id(ctx) not in self._teachers:
            raise NoiseproofError(
                "consistency: teacher 'frozen' is the network as training starts; compute the "
                "terms inside method.attached(ctx), as the trainer does"
            )
        params, buffers = self._teachers[id(ctx)]
        return {**{name: b.clone() for name, b in buffers.items()}, **params}

    def terms(self, ctx: StepContext, x: Tensor, y: Tensor) -> dict[str, Tensor]:
        """{'task': CE of the noisy (or clean) forward, 'consistency': lam * mean distance}."""
        noise = training_noise(self.noise, self.level, ctx, "consistency")
        noisy_params = straight_through(
            ctx.params, noise.sample(detached(ctx.params), ctx.generator)
        )
        names = self.compared(ctx.model)
        own_clean = self.teacher == "self" and self.ce_on == "clean"
        no_graph = self.detach_clean and not own_clean
        with captured(ctx.model, names, self.spiking_features) as store:
            noisy_out = ctx.forward(noisy_params, x)
            noisy = layer_features(ctx.model, taken(store), self.spiking_features)
            with torch.no_grad() if no_graph else contextlib.nullcontext():
                clean_out = ctx.forward(self.teacher_params(ctx), x)
            clean = layer_features(ctx.model, taken(store), self.spiking_features)
        if OUTPUT in names:
            noisy[OUTPUT], clean[OUTPUT] = [noisy_out], [clean_out]
        distances = [
            feature_distance(a, b.detach() if self.detach_clean else b, self.distance, ctx.task, y)
            for name in names
            for a, b in zip(noisy[name], clean[name], strict=True)
        ]
        if self.ce_on == "noisy":
            task_out = noisy_out
        elif own_clean:
            task_out = clean_out
        else:  # a frozen teacher: the network's own clean forward carries the CE
            task_out = ctx.forward({**scratch_buffers(ctx.model), **ctx.params}, x)
        term = torch.stack(distances).mean()
        return {"task": ctx.task.loss(task_out, y), "consistency": self.lam * term}

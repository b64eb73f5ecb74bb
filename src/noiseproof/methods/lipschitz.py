"""Per-layer Lipschitz regularisation: CorrectNet's error suppression (Eldebiky et al. 2023)."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any, ClassVar, Literal

import torch
from pydantic import Field, PrivateAttr
from torch import Tensor, nn

from noiseproof.chip import detached, straight_through
from noiseproof.errors import NoiseproofError
from noiseproof.methods.base import Method, OptionalNoise, StepContext, methods
from noiseproof.methods.common import training_noise
from noiseproof.methods.spectral import SpectralNormEstimator, is_operator_layer


def regularised_layers(ctx: StepContext, layer_types: tuple[str, ...]) -> dict[str, nn.Module]:
    """On-chip layers (owner of an on-chip '<layer>.weight') whose class is in `layer_types`."""
    modules = dict(ctx.model.named_modules())
    chosen = {}
    for name in ctx.params:
        owner, _, leaf = name.rpartition(".")
        module = modules.get(owner)
        if (
            leaf == "weight"
            and module is not None
            and type(module).__name__ in layer_types
            and is_operator_layer(module)
        ):
            chosen[owner] = module
    return chosen


@methods.register("lipschitz")
class Lipschitz(Method):
    """Per-layer Lipschitz (spectral-norm) penalty, CorrectNet's error suppression (DATE 2023).

    loss = CE + weight * sum_l max(0, sigma_l - target)^2 (mode 'above'), or
    weight * sum_l (sigma_l - target)^2 (mode 'both'), where sigma_l is the operator norm of
    layer l's weight: the largest singular value of the matrix for Linear, of the convolution
    operator on the layer's actual input size for ConvNd (power iteration, vectors kept between
    steps; see noiseproof.methods.spectral). A layer with sigma_l <= 1 cannot amplify the
    error it receives. The paper's exact "modified Lipschitz constant regularisation" is not
    available to us: the hinge-squared form, the target and the weight are our choices.
    With `noise_level` set, the task term is computed through a fresh noisy draw each step
    (straight-through, as in `noise_injection`), so the two compose in one method.
    """

    precisions: ClassVar[tuple[str, ...]] = ("fp32", "bf16")
    precision_note: ClassVar[str] = "its inner gradients would underflow in fp16 unscaled"

    weight: float = Field(0.01, ge=0.0, allow_inf_nan=False, description="penalty weight")
    target: float = Field(1.0, gt=0.0, allow_inf_nan=False, description="target norm per layer")
    mode: Literal["above", "both"] = Field(
        "above", description="'above': penalise norms above target; 'both': pull to target"
    )
    iterations: int = Field(1, ge=1, le=100, description="power-iteration steps per step")
    layers: tuple[str, ...] = Field(
        ("Linear", "Conv1D", "Conv1d", "Conv2d", "Conv3d"),
        description="layer classes regularised (Conv1D: Hugging Face's transposed Linear)",
    )
    noise: OptionalNoise = Field(
        None, description="noise model for noise injection (default: the experiment's)"
    )
    noise_level: float | None = Field(
        None,
        ge=0.0,
        allow_inf_nan=False,
        description="train the task term through noise at this level (None: clean)",
    )
    _estimators: dict[int, Any] = PrivateAttr(default_factory=dict)

    def _estimator(self, ctx: StepContext) -> SpectralNormEstimator:
        key = id(ctx)
        if key not in self._estimators:
            layers = regularised_layers(ctx, self.layers)
            if not layers:
                raise NoiseproofError(
                    f"method 'lipschitz': no on-chip layer of classes {list(self.layers)}"
                )
            self._estimators[key] = SpectralNormEstimator(layers, ctx.generator)
        return self._estimators[key]

    @contextlib.contextmanager
    def recording(self, estimator: SpectralNormEstimator) -> Iterator[None]:
        """Forward pre-hooks that record each regularised layer's per-example input shape."""
        handles = []
        for name, module in estimator.modules.items():

            def hook(module: nn.Module, inputs: tuple, name: str = name) -> None:
                estimator.observe(name, tuple(inputs[0].shape[1:]))

            handles.append(module.register_forward_pre_hook(hook))
        try:
            yield
        finally:
            for handle in handles:
                handle.remove()

    def layer_norms(self, ctx: StepContext) -> dict[str, Tensor]:
        """Current differentiable norm estimate of every regularised layer (layer name -> sigma)."""
        estimator = self._estimator(ctx)
        weights = {name: ctx.params[f"{name}.weight"] for name in estimator.modules}
        return estimator.norms(weights, self.iterations)

    def terms(self, ctx: StepContext, x: Tensor, y: Tensor) -> dict[str, Tensor]:
        """{'task': CE (clean or through one noisy draw), 'lipschitz': weighted norm penalty}."""
        estimator = self._estimator(ctx)
        params: dict[str, Tensor] = dict(ctx.params)
        if self.noise_level is not None or self.noise is not None:
            noise = training_noise(self.noise, self.noise_level, ctx, "lipschitz")
            params = straight_through(ctx.params, noise.sample(detached(ctx.params), ctx.generator))
        with self.recording(estimator):
            task = ctx.task.loss(ctx.forward(params, x), y)
        sigmas = torch.stack(list(self.layer_norms(ctx).values()))
        excess = sigmas - self.target
        if self.mode == "above":
            excess = excess.clamp_min(0.0)
        return {"task": task, "lipschitz": self.weight * excess.pow(2).sum()}

    @contextlib.contextmanager
    def attached(self, ctx: StepContext) -> Iterator[None]:
        """Fresh power-iteration state for this training run, dropped afterwards."""
        self._estimators.pop(id(ctx), None)
        try:
            yield
        finally:
            self._estimators.pop(id(ctx), None)

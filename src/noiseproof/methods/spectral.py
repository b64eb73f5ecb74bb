"""Operator (spectral) norms of linear and convolution layers by persistent power iteration.

The Lipschitz constant of an affine layer x -> A x + b in the l2 norm is the largest singular
value of its linear operator A (the bias does not matter). For nn.Linear, A is the weight
matrix. For a convolution, A is the convolution itself acting on inputs of one spatial size
(with the layer's stride, padding, dilation and groups), not the reshaped [C_out, C_in*k*k]
kernel matrix: the two differ. We run power iteration on that operator, A^T applied through
autograd (the vector-Jacobian product of a linear map is its adjoint), so no approximation is
made beyond the finite number of iterations; the operator norm is that of the input size the
layer actually sees, which we record from a forward pass.

As in Miyato et al. 2018 (spectral normalisation), the input-space vector u persists between
calls, so one iteration per training step suffices once it has converged, and the estimate
sigma = <v, A_W u> with u, v held fixed is differentiable in W (d sigma / dW = v u^T for Linear).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import cast

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from noiseproof.chip import is_transposed_linear
from noiseproof.errors import NoiseproofError

OPERATOR_LAYERS: tuple[type[nn.Module], ...] = (nn.Linear, nn.Conv1d, nn.Conv2d, nn.Conv3d)


def is_operator_layer(module: nn.Module) -> bool:
    """True for the layers whose operator norm we can estimate (Linear, Hugging Face's
    Conv1D, Conv1d/2d/3d)."""
    return isinstance(module, OPERATOR_LAYERS) or is_transposed_linear(module)


def apply_operator(module: nn.Module, weight: Tensor, u: Tensor) -> Tensor:
    """The linear part A_W u of `module` with `weight` in place of its own (no bias).

    Linear: u @ W^T; Hugging Face's Conv1D: u @ W; convolutions: the layer's own convolution
    (stride, padding, padding mode, dilation, groups) of u with W.
    """
    if isinstance(module, nn.Linear):
        return F.linear(u, weight)
    if is_transposed_linear(module):
        return u @ weight
    if isinstance(module, nn.Conv1d | nn.Conv2d | nn.Conv3d):
        return module._conv_forward(u, weight, None)
    raise NoiseproofError(
        f"no operator norm for {type(module).__name__} (supported: Linear, Conv1d/2d/3d)"
    )


def input_shape_of(module: nn.Module, observed: tuple[int, ...] | None) -> tuple[int, ...]:
    """Per-example input shape of the operator: (in_features,) for Linear, the observed one else."""
    if isinstance(module, nn.Linear):
        return (module.in_features,)
    if is_transposed_linear(module):
        return (cast(Tensor, module.weight).shape[0],)
    if observed is None:
        raise NoiseproofError(
            f"the operator norm of a {type(module).__name__} depends on its input size: "
            "run one forward pass through the model first"
        )
    return tuple(observed)


def adjoint(module: nn.Module, weight: Tensor, v: Tensor, like: Tensor) -> Tensor:
    """A_W^T v, as the vector-Jacobian product of u -> A_W u (exact: the map is linear)."""
    with torch.enable_grad():
        probe = torch.zeros_like(like, requires_grad=True)
        out = apply_operator(module, weight.detach(), probe)
        (grad,) = torch.autograd.grad(out, probe, grad_outputs=v)
    return grad


def _unit(t: Tensor) -> Tensor:
    return t / t.norm().clamp_min(1e-12)


class SpectralNormEstimator:
    """Power iteration on each layer's operator, its vectors kept from one call to the next.

    modules: layer name -> module (Linear or ConvNd). `observe(name, shape)` records a conv
    layer's per-example input shape (the `lipschitz` method does it with a forward pre-hook);
    `estimate(name, weight, iterations)` refines u by `iterations` steps and returns the
    differentiable estimate sigma = <v, A_W u> = ||A_W u|| of the largest singular value.
    """

    def __init__(self, modules: Mapping[str, nn.Module], generator: torch.Generator) -> None:
        for name, module in modules.items():
            if not is_operator_layer(module):
                raise NoiseproofError(
                    f"layer '{name}' is a {type(module).__name__}: "
                    "operator norms need Linear, Conv1D or Conv1d/2d/3d"
                )
        self.modules = dict(modules)
        self.generator = generator
        self.shapes: dict[str, tuple[int, ...]] = {}
        self.vectors: dict[str, Tensor] = {}

    def observe(self, name: str, shape: tuple[int, ...]) -> None:
        """Record the per-example input shape of layer `name` (a new size restarts its vector)."""
        shape = tuple(int(s) for s in shape)
        if self.shapes.get(name) != shape:
            self.shapes[name] = shape
            self.vectors.pop(name, None)

    def _vector(self, name: str, weight: Tensor) -> Tensor:
        module = self.modules[name]
        shape = input_shape_of(module, self.shapes.get(name))
        u = self.vectors.get(name)
        if u is None or tuple(u.shape[1:]) != shape:
            gen = self.generator
            draw = torch.randn((1, *shape), generator=gen, dtype=weight.dtype, device=gen.device)
            u = _unit(draw.to(weight.device))
        return u

    def estimate(self, name: str, weight: Tensor, iterations: int = 1) -> Tensor:
        """sigma_max of layer `name`'s operator with `weight`, after `iterations` power steps.

        Each step: v = A u / ||A u||, u = A^T v / ||A^T v||. The returned scalar is
        <v, A_weight u> with u, v detached, so gradients reach `weight` only.
        """
        module = self.modules[name]
        u = self._vector(name, weight)
        with torch.no_grad():
            w = weight.detach()
            for _ in range(iterations):
                v = _unit(apply_operator(module, w, u))
                u = _unit(adjoint(module, w, v, u))
            v = _unit(apply_operator(module, w, u))
        self.vectors[name] = u
        return (v * apply_operator(module, weight, u)).sum()

    def norms(self, weights: Mapping[str, Tensor], iterations: int = 1) -> dict[str, Tensor]:
        """`estimate` for every layer named in `weights` (layer name -> weight tensor)."""
        return {name: self.estimate(name, w, iterations) for name, w in weights.items()}


def operator_norm(
    module: nn.Module,
    input_shape: tuple[int, ...] | None = None,
    *,
    iterations: int = 500,
    tol: float = 1e-7,
    generator: torch.Generator | None = None,
) -> float:
    """The operator norm of one layer (its own weight) by power iteration run to convergence.

    input_shape: per-example input shape, required for convolutions (e.g. (C, H, W)). Stops
    when the estimate changes by less than `tol` (relative) or after `iterations` steps.
    """
    weight = cast(Tensor, module.weight)
    gen = generator or torch.Generator(device=weight.device).manual_seed(0)
    estimator = SpectralNormEstimator({"layer": module}, gen)
    if input_shape is not None:
        estimator.observe("layer", input_shape)
    previous = 0.0
    with torch.no_grad():
        for _ in range(iterations):
            sigma = float(estimator.estimate("layer", weight, 1))
            if abs(sigma - previous) <= tol * max(sigma, 1e-12):
                break
            previous = sigma
    return sigma

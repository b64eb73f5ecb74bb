"""The noise-model interface: a frozen, validated set of parameters that perturbs a params dict."""

from __future__ import annotations

import functools
from abc import abstractmethod
from collections.abc import Callable, Mapping
from typing import Any, ClassVar, Self

import torch
from pydantic import BaseModel, ConfigDict
from torch import Tensor

from noiseproof.chip import Params
from noiseproof.physical import limit_all
from noiseproof.registry import Registry, validated


def check_sample_arguments(params: Any, generator: Any) -> None:
    """TypeError naming the argument of `NoiseModel.sample` that is not what it takes: `params`
    a mapping of parameter names (str) to floating-point tensors, `generator` a
    torch.Generator (every draw takes an explicit one, never the global random state)."""
    if not isinstance(params, Mapping):
        raise TypeError(
            "params must be a mapping of parameter name -> floating-point tensor (e.g. "
            f"noiseproof.chip.chip_params(model)), got {type(params).__name__}"
        )
    for name, tensor in params.items():
        if not isinstance(name, str):
            raise TypeError(f"params: key {name!r} is not a parameter name (a str)")
        if not isinstance(tensor, Tensor):
            raise TypeError(f"params[{name!r}] must be a tensor, got {type(tensor).__name__}")
        if not tensor.is_floating_point():
            raise TypeError(
                f"params[{name!r}] must be a floating-point tensor, got {tensor.dtype} "
                "(integer buffers cannot carry analog noise: keep them off the chip)"
            )
    if not isinstance(generator, torch.Generator):
        raise TypeError(
            "generator must be a torch.Generator (e.g. torch.Generator().manual_seed(0)), "
            f"got {type(generator).__name__}: draws never come from the global random state"
        )


def _physical(draw: Callable, faults: bool) -> Callable:
    """`draw` with its arguments checked first (`check_sample_arguments`) and its perturbed
    tensors passed through noiseproof.physical.limit_all (the fault masks, with `faults`, as
    they are). Idempotent: a wrapped draw is returned as is."""
    if getattr(draw, "_physical", False):
        return draw

    @functools.wraps(draw)
    def kept(self: NoiseModel, params: Params, generator: torch.Generator) -> Any:
        check_sample_arguments(params, generator)
        out = draw(self, params, generator)
        return (limit_all(out[0]), out[1]) if faults else limit_all(out)

    kept._physical = True  # type: ignore[attr-defined]
    return kept


class NoiseModel(BaseModel):
    """One chip's non-ideality: `sample(params, generator)` returns one transfer of `params`.

    Subclasses declare their parameters as pydantic fields (validated at construction) and name
    the one a sweep varies in `level_field`. Most effects act per tensor and derive from
    `PerTensorNoise`; effects that couple tensors (crossbar biases, chains) implement `sample`.
    Every subclass's `sample` and `sample_with_faults` check their arguments (one TypeError
    naming `params` or `generator`) and return values kept physical
    (noiseproof.physical.limit_all: a neuron parameter clamped into its range, weights
    untouched), built-in and plugin models alike, without the subclass doing anything.

    >>> import torch, noiseproof as nf
    >>> noise = nf.create_noise({"name": "relative_gaussian", "zeta": 0.2})
    >>> noise.with_level(0.0).sample({"w": torch.ones(2)}, nf.generator(0))["w"]  # level 0: clean
    tensor([1., 1.])
    """

    model_config = ConfigDict(extra="forbid", frozen=True)
    registered_name: ClassVar[str] = ""
    level_field: ClassVar[str] = ""

    def __init_subclass__(cls, **kwargs: Any) -> None:
        """Wrap the subclass's own concrete `sample`/`sample_with_faults` in `_physical`."""
        super().__init_subclass__(**kwargs)
        for method, faults in (("sample", False), ("sample_with_faults", True)):
            own = cls.__dict__.get(method)
            if callable(own) and not getattr(own, "__isabstractmethod__", False):
                setattr(cls, method, _physical(own, faults))

    @property
    def level(self) -> float:
        """Current value of the sweep parameter."""
        return getattr(self, self.level_field)

    def with_level(self, level: float) -> Self:
        """A copy with the sweep parameter set to `level`, validated like any construction."""
        what = f"noise model '{self.registered_name}'"
        return validated(type(self), what, **{**self.model_dump(), self.level_field: level})

    def spec(self) -> dict:
        """{'name': ..., **params}: what `noise_models.create` takes back."""
        return {"name": self.registered_name, **self.model_dump(mode="json")}

    @abstractmethod
    def sample(self, params: Params, generator: torch.Generator) -> Params:
        """One transfer: a new dict of perturbed tensors (inputs are never modified)."""

    def sample_with_faults(
        self, params: Params, generator: torch.Generator
    ) -> tuple[Params, dict[str, Tensor]]:
        """One transfer and, per tensor, a bool mask of elements on stuck devices.

        Models with stuck devices override this (hardware-aware training drops those elements
        from the update, Drolet et al. 2023); the default reports no stuck elements.
        """
        return self.sample(params, generator), {}


class PerTensorNoise(NoiseModel):
    """A noise model that perturbs every on-chip tensor independently."""

    @torch.no_grad()
    def sample(self, params: Params, generator: torch.Generator) -> Params:
        """One transfer: `perturb` applied to each tensor, in the dict's order."""
        return {name: self.perturb(name, tensor, generator) for name, tensor in params.items()}

    @abstractmethod
    def perturb(self, name: str, tensor: Tensor, generator: torch.Generator) -> Tensor:
        """Perturb one tensor."""


noise_models: Registry[NoiseModel] = Registry("noise model")


def standard_normal(like: Tensor, generator: torch.Generator) -> Tensor:
    """N(0,1) draws shaped like `like`, made on the generator's device, then moved to `like`'s.

    With the generator on the tensor's device (a job's generators are made on its device) the
    move is a no-op: no copy between host and device.
    """
    draw = torch.randn(like.shape, generator=generator, dtype=like.dtype, device=generator.device)
    return draw.to(like.device)


def uniform(like: Tensor, generator: torch.Generator) -> Tensor:
    """U[0,1) draws shaped like `like`, made on the generator's device, then moved to `like`'s."""
    draw = torch.rand(like.shape, generator=generator, dtype=like.dtype, device=generator.device)
    return draw.to(like.device)

"""Features of spiking layers for consistency regularisation: spike rates or membrane traces.

Hou et al. (2024) hold a noisy network's intermediate features to the clean network's; in a
spiking network a layer emits a binary spike train over T time steps, so the feature of a
spiking layer here is what that train codes, over the whole forward (our reading):

- rates: r = (1/T) sum_t z_t, the mean over time of the layer's spikes z_t ([B, *neurons];
  the rate code; gradients reach it through the neurons' surrogate derivative);
- membrane: the membrane potentials v_t of every step, stacked on a last, time axis
  ([B, *neurons, T]; the neurons stay on dim 1, the channel dim of `channel_mse`).

A spiking layer is a module called once per time step. Recognised automatically:
snntorch neurons (subclasses of snntorch's SpikingNeuron, found by class name as
noiseproof.chip.hidden_state finds them), the built-in models' LIF layers
(noiseproof.models.spiking.LIF, whose `step` is recorded), and any module whose class sets
`spiking_neuron = True` (a user's own neuron). A recognised module's call returns its spikes,
or a tuple (spikes, ..., membrane) as snntorch's neurons do with their state (Leaky: (spk,
mem), Synaptic: (spk, syn, mem)); without a tuple, its membrane is its `mem` attribute after
the call (snntorch's `init_hidden=True`).
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from typing import Any, Literal

import torch
from torch import Tensor, nn

from noiseproof.chip import is_snntorch_neuron
from noiseproof.errors import NoiseproofError
from noiseproof.models.spiking import LIF

SpikingFeature = Literal["rates", "membrane"]


def is_spiking_layer(module: nn.Module) -> bool:
    """Whether `module` is a spiking layer (see the module docstring for what is recognised)."""
    cls: type = type(module)  # as `type`: mypy takes type[Module] for an unhashable instance
    declared = getattr(cls, "spiking_neuron", False) is True
    return declared or isinstance(module, LIF) or is_snntorch_neuron(cls)


def spiking_layers(model: nn.Module) -> list[str]:
    """Names of the spiking layers of `model`, in registration order (submodules of a spiking
    layer are not layers of their own)."""
    found: list[str] = []
    for name, module in model.named_modules():
        inside = any(name.startswith(f"{outer}.") for outer in found)
        if name and not inside and is_spiking_layer(module):
            found.append(name)
    return found


def _step_value(name: str, module: nn.Module, output: Any, kind: SpikingFeature) -> Tensor:
    """The spikes (rates) or the membrane (membrane) of one call of a spiking layer."""
    if isinstance(output, tuple | list) and output and isinstance(output[0], Tensor):
        value = output[0] if kind == "rates" else output[-1]
    elif kind == "rates":
        value = output
    else:
        value = getattr(module, "mem", None)
    if not isinstance(value, Tensor):
        what = "spikes" if kind == "rates" else "membrane (a tuple's last entry or 'mem')"
        raise NoiseproofError(
            f"consistency: spiking layer {name!r} gives no {what} tensor "
            f"(it returns {type(output).__name__})"
        )
    return value


@contextlib.contextmanager
def recording(
    model: nn.Module, names: list[str], kind: SpikingFeature, store: dict[str, list[Tensor]]
) -> Iterator[None]:
    """Append each call's spikes (kind 'rates') or membrane ('membrane') of the named spiking
    layers to `store[name]`; hooks (and the built-in LIF layers' recorded `step`) are removed
    on exit."""
    modules = dict(model.named_modules())
    handles, wrapped = [], []

    def hook(name: str) -> Callable[[nn.Module, Any, Any], None]:
        def record(module: nn.Module, inputs: Any, output: Any) -> None:
            store[name].append(_step_value(name, module, output, kind))

        return record

    def recorded_step(name: str, step: Callable) -> Callable:
        def run(*args: Any, **kwargs: Any) -> tuple[Tensor, tuple[Tensor, ...]]:
            z, state = step(*args, **kwargs)
            store[name].append(z if kind == "rates" else state[0])
            return z, state

        return run

    try:
        for name in names:
            module = modules[name]
            if isinstance(module, LIF):
                module.step = recorded_step(name, module.step)  # type: ignore[method-assign]  # instance attribute, removed below
                wrapped.append(module)
            else:
                handles.append(module.register_forward_hook(hook(name)))
        yield
    finally:
        for handle in handles:
            handle.remove()
        for module in wrapped:
            del module.step


def layer_feature(steps: list[Tensor], kind: SpikingFeature) -> list[Tensor]:
    """One feature from a spiking layer's per-step values of one forward: the mean over time
    (rates, [B, *neurons]) or the stack on a last time axis (membrane, [B, *neurons, T]);
    none when the layer was not called."""
    if not steps:
        return []
    if kind == "rates":
        return [torch.stack(steps).mean(0)]
    return [torch.stack(steps, dim=-1)]

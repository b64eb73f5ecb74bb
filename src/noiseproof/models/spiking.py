"""Spiking networks: a feed-forward LIF network (`snn_mlp`) and a recurrent adaptive LIF
network (`lsnn`, Bellec et al. 2018, the spiking model of Buechel et al. 2022).

Input convention (every spiking model, and the temporal datasets): a batch [B, T, *features],
batch first, time second, the features of one step flattened. An input_shape of one dimension
(a static vector) is repeated over `steps` time steps (direct encoding); any other input_shape
is read as (T, *features) and its own T steps are used.

Neuron dynamics (discrete time, step dt; Bellec et al. 2018, their LSNN code's ALIF cell):
  decay alpha = exp(-dt / tau_mem), adaptation decay rho = exp(-dt / tau_adapt),
  a_t = rho a_{t-1} + (1 - rho) z_{t-1}                  (threshold adaptation)
  A_t = threshold + adaptation * a_t                     (adaptive threshold)
  v_t = alpha v_{t-1} + (1 - alpha) I_t - A_t z_{t-1}    (leaky integration, reset by subtraction)
  z_t = H((v_t - A_t) / A_t)                             (spike; surrogate gradient below)
with I_t the input current (and, in the LSNN, the recurrent input W_rec z_{t-1}); a neuron with
adaptation 0 is a plain LIF neuron. Readout neurons are leaky and do not spike:
o_t = kappa o_{t-1} + (1 - kappa) (W_out z_t + b_out), kappa = exp(-dt / tau_out); the logits are
the mean over time of o_t (readout 'membrane'), or, with readout 'spikes', the output units are
LIF neurons (same dynamics, no adaptation) and the logits are their spike counts.

Neuron parameters are per-neuron tensors named `tau_mem`, `tau_adapt`, `threshold`,
`adaptation` (nn.Parameters with learn_neuron=True, else persistent buffers, in checkpoints
either way). They are not on the chip by default; `chip.include: ["*.tau_mem", "*.threshold"]`
puts them there, and noiseproof.physical keeps their perturbed values physical. The forward
clamps them into the same ranges, so a learnt value that left its range cannot break it.
All loops are over time steps with no branch on tensor values: the models run under
torch.func.vmap (many chips in one forward).
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from itertools import pairwise
from typing import Annotated, Literal, cast

import torch
from pydantic import Field
from torch import Tensor, nn

from noiseproof.models.base import ModelSpec, models
from noiseproof.physical import POSITIVE_FLOOR

Surrogate = Literal["fast_sigmoid", "atan", "sigmoid"]
Readout = Literal["membrane", "spikes"]


def _fast_sigmoid(x: Tensor, slope: float) -> Tensor:
    return x / (1 + slope * x.abs())


def _atan(x: Tensor, slope: float) -> Tensor:
    return torch.atan(math.pi / 2 * slope * x) / math.pi


def _sigmoid(x: Tensor, slope: float) -> Tensor:
    return torch.sigmoid(slope * x)


_PRIMITIVES = {"fast_sigmoid": _fast_sigmoid, "atan": _atan, "sigmoid": _sigmoid}


def spike(x: Tensor, surrogate: Surrogate, slope: float) -> Tensor:
    """H(x) forward (1.0 where x > 0), the surrogate's derivative backward (Neftci et al. 2019).

    The derivatives are snntorch.surrogate's: fast_sigmoid 1 / (1 + slope |x|)^2 (Zenke &
    Ganguli 2018), atan (slope / 2) / (1 + (pi/2 slope x)^2), sigmoid slope s(slope x)
    (1 - s(slope x)). Written as H(x) + (g(x) - stopgrad g(x)) with g the derivative's
    primitive: the forward value is exactly H(x) and no custom autograd.Function is needed,
    so vmap runs it.
    """
    g = _PRIMITIVES[surrogate](x, slope)
    return (x > 0).to(x.dtype) + (g - g.detach())


def _neuron_tensor(module: nn.Module, name: str, value: Tensor, learn: bool) -> None:
    """Register `value` on `module` as a Parameter (learn) or a persistent buffer."""
    if learn:
        module.register_parameter(name, nn.Parameter(value))
    else:
        module.register_buffer(name, value)


def _decay(tau: Tensor, dt: float) -> Tensor:
    """exp(-dt / tau), tau kept positive (noiseproof.physical.POSITIVE_FLOOR)."""
    return torch.exp(-dt / tau.clamp(min=POSITIVE_FLOOR))


class LIF(nn.Module):
    """A layer of `size` (adaptive) LIF neurons: the dynamics of the module docstring.

    Tensors: tau_mem, threshold, and with `adaptive` tau_adapt and adaptation (a fraction of
    the neurons adaptive: `adaptation` is 0 for the others).
    """

    # registered by _neuron_tensor, as parameters or buffers (annotations only, for mypy)
    tau_mem: Tensor
    threshold: Tensor
    tau_adapt: Tensor
    adaptation: Tensor

    def __init__(
        self,
        size: int,
        *,
        tau_mem: float,
        threshold: float,
        dt: float,
        surrogate: Surrogate,
        slope: float,
        learn: bool,
        tau_adapt: float | None = None,
        adaptation: float = 0.0,
        adaptive_fraction: float = 0.0,
    ) -> None:
        super().__init__()
        self.dt, self.surrogate, self.slope = dt, surrogate, slope
        self.adaptive = tau_adapt is not None
        _neuron_tensor(self, "tau_mem", torch.full((size,), float(tau_mem)), learn)
        _neuron_tensor(self, "threshold", torch.full((size,), float(threshold)), learn)
        if tau_adapt is not None:
            strength = torch.zeros(size)
            strength[: round(adaptive_fraction * size)] = adaptation
            _neuron_tensor(self, "tau_adapt", torch.full((size,), float(tau_adapt)), learn)
            _neuron_tensor(self, "adaptation", strength, learn)

    def constants(self) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        """(alpha, rho, threshold, adaptation) in their physical ranges, once per forward."""
        alpha, threshold = _decay(self.tau_mem, self.dt), self.threshold.clamp(min=POSITIVE_FLOOR)
        if not self.adaptive:
            zero = torch.zeros_like(threshold)
            return alpha, zero, threshold, zero
        return alpha, _decay(self.tau_adapt, self.dt), threshold, self.adaptation.clamp(min=0)

    def step(
        self,
        current: Tensor,
        state: tuple[Tensor, Tensor, Tensor],
        constants: tuple[Tensor, Tensor, Tensor, Tensor],
    ) -> tuple[Tensor, tuple[Tensor, Tensor, Tensor]]:
        """One time step: (z_t, (v_t, a_t, z_t)) from I_t and (v, a, z) of step t-1."""
        alpha, rho, threshold, adaptation = constants
        v, a, z = state
        a = rho * a + (1 - rho) * z
        adaptive_threshold = threshold + adaptation * a
        v = alpha * v + (1 - alpha) * current - adaptive_threshold * z
        z = spike((v - adaptive_threshold) / adaptive_threshold, self.surrogate, self.slope)
        return z, (v, a, z)


class LeakyReadout(nn.Module):
    """Leaky, non-spiking output neurons: o_t = kappa o_{t-1} + (1 - kappa) c_t; the logits
    are the mean of o_t over time."""

    tau_mem: Tensor  # registered by _neuron_tensor (a parameter or a buffer)

    def __init__(self, size: int, *, tau_mem: float, dt: float, learn: bool) -> None:
        super().__init__()
        self.dt = dt
        _neuron_tensor(self, "tau_mem", torch.full((size,), float(tau_mem)), learn)

    def forward(self, currents: Tensor) -> Tensor:
        """Logits [B, C] from output currents [T, B, C]."""
        kappa = _decay(self.tau_mem, self.dt)
        o = torch.zeros_like(currents[0])
        total = torch.zeros_like(currents[0])
        for c in currents:
            o = kappa * o + (1 - kappa) * c
            total = total + o
        return total / len(currents)


class SpikeCountReadout(nn.Module):
    """Spiking output neurons (LIF, no adaptation); the logits are their spike counts."""

    def __init__(self, lif: LIF) -> None:
        super().__init__()
        self.lif = lif

    def forward(self, currents: Tensor) -> Tensor:
        """Spike counts [B, C] from output currents [T, B, C]."""
        constants = self.lif.constants()
        zero = torch.zeros_like(currents[0])
        state, count = (zero, zero, zero), zero
        for c in currents:
            z, state = self.lif.step(c, state, constants)
            count = count + z
        return count


def time_major(x: Tensor, repeat: int | None) -> Tensor:
    """[T, B, F] from a batch [B, T, *features]; a static batch [B, F] repeated `repeat` times."""
    if repeat is not None:
        return x.reshape(1, x.shape[0], -1).expand(repeat, -1, -1)
    return x.reshape(x.shape[0], x.shape[1], -1).transpose(0, 1)


class SpikingMLP(nn.Module):
    """Layers of Linear + LIF, then a Linear readout to leaky or spiking output neurons."""

    def __init__(self, widths: list[int], spec: SpikingSpec, repeat: int | None) -> None:
        super().__init__()
        self.repeat = repeat
        self.fc = nn.ModuleList(nn.Linear(a, b) for a, b in pairwise(widths[:-1]))
        self.lif = nn.ModuleList(spec.lif(size) for size in widths[1:-1])
        self.head = nn.Linear(widths[-2], widths[-1])
        self.out = spec.readout_module(widths[-1])

    def forward(self, x: Tensor) -> Tensor:
        """Logits [B, classes] of a batch [B, T, *features] (or [B, F], direct encoding)."""
        h = time_major(x, self.repeat)
        for fc, lif in zip(self.fc, cast(Iterable[LIF], self.lif), strict=True):
            constants, currents = lif.constants(), fc(h)
            zero = torch.zeros_like(currents[0])
            state, spikes = (zero, zero, zero), []
            for current in currents:
                z, state = lif.step(current, state, constants)
                spikes.append(z)
            h = torch.stack(spikes)
        return self.out(self.head(h))


class RecurrentLSNN(nn.Module):
    """Input Linear -> one recurrent layer of adaptive LIF neurons -> Linear readout."""

    def __init__(self, features: int, classes: int, spec: Lsnn, repeat: int | None) -> None:
        super().__init__()
        self.repeat = repeat
        self.inp = nn.Linear(features, spec.hidden, bias=False)
        self.rec = nn.Linear(spec.hidden, spec.hidden, bias=False)
        self.lif = spec.lif(
            spec.hidden,
            tau_adapt=spec.tau_adapt,
            adaptation=spec.adaptation,
            adaptive_fraction=spec.adaptive_fraction,
        )
        self.head = nn.Linear(spec.hidden, classes)
        self.out = spec.readout_module(classes)

    def forward(self, x: Tensor) -> Tensor:
        """Logits [B, classes] of a batch [B, T, *features] (or [B, F], direct encoding).

        I_t = W_in x_t + W_rec z_{t-1}, W_rec without self-connections (Bellec et al. 2018):
        `rec` is called at every step (its hooks run) and its diagonal's term taken off.
        """
        currents = self.inp(time_major(x, self.repeat))
        self_connections = torch.diagonal(self.rec.weight)
        constants = self.lif.constants()
        zero = currents.new_zeros(currents.shape[1], len(self_connections))
        state, spikes = (zero, zero, zero), []
        for current in currents:
            z = state[2]
            z, state = self.lif.step(current + self.rec(z) - self_connections * z, state, constants)
            spikes.append(z)
        return self.out(self.head(torch.stack(spikes)))


class SpikingSpec(ModelSpec):
    """Neuron settings shared by the spiking models (see the module docstring)."""

    steps: int = Field(25, gt=0, description="time steps a static (1-d) input is repeated over")
    tau_mem: float = Field(20.0, gt=0, description="membrane time constant (units of dt)")
    threshold: float = Field(0.01, gt=0, description="firing threshold (Buechel et al. 2022)")
    tau_out: float = Field(20.0, gt=0, description="time constant of the readout neurons")
    dt: float = Field(1.0, gt=0, description="simulation time step")
    surrogate: Surrogate = Field("fast_sigmoid", description="surrogate gradient of the spike")
    slope: float = Field(5.0, gt=0, description="slope of the surrogate gradient")
    readout: Readout = Field("membrane", description="mean output membrane, or spike counts")
    learn_neuron: bool = Field(False, description="neuron parameters as nn.Parameter (learnt)")

    def lif(self, size: int, **adaptive: float) -> LIF:
        """A LIF layer with these settings (`adaptive`: tau_adapt, adaptation, fraction)."""
        return LIF(
            size,
            tau_mem=self.tau_mem,
            threshold=self.threshold,
            dt=self.dt,
            surrogate=self.surrogate,
            slope=self.slope,
            learn=self.learn_neuron,
            **adaptive,
        )

    def readout_module(self, classes: int) -> nn.Module:
        """The output neurons: leaky membrane or spike counts."""
        if self.readout == "spikes":
            return SpikeCountReadout(self.lif(classes))
        return LeakyReadout(classes, tau_mem=self.tau_out, dt=self.dt, learn=self.learn_neuron)

    def repeat(self, input_shape: tuple[int, ...]) -> int | None:
        """`steps` for a static 1-d input (direct encoding), None for [T, *features]."""
        return self.steps if len(input_shape) == 1 else None


@models.register("snn_mlp")
class SnnMlp(SpikingSpec):
    """Feed-forward spiking network: [Linear -> LIF] per hidden width -> Linear -> readout."""

    hidden: tuple[Annotated[int, Field(gt=0)], ...] = Field(
        (128,), description="width of each hidden LIF layer"
    )

    def build(self, input_shape: tuple[int, ...], num_outputs: int) -> nn.Module:
        """The network for inputs [B, *input_shape] (see the module docstring)."""
        features = input_shape[0] if len(input_shape) == 1 else math.prod(input_shape[1:])
        widths = [features, *self.hidden, num_outputs]
        return SpikingMLP(widths, self, self.repeat(input_shape))


@models.register("lsnn")
class Lsnn(SpikingSpec):
    """Recurrent adaptive LIF network (LSNN, Bellec et al. 2018), Buechel et al. 2022's model.

    One recurrent layer of `hidden` neurons, `adaptive_fraction` of them adaptive.
    """

    hidden: int = Field(256, gt=0, description="recurrent adaptive LIF neurons")
    tau_adapt: float = Field(200.0, gt=0, description="threshold adaptation time constant")
    adaptation: float = Field(1.8, ge=0, description="threshold adaptation strength (beta)")
    adaptive_fraction: float = Field(1.0, ge=0, le=1, description="share of adaptive neurons")

    def build(self, input_shape: tuple[int, ...], num_outputs: int) -> nn.Module:
        """The network for inputs [B, *input_shape] (see the module docstring)."""
        features = input_shape[0] if len(input_shape) == 1 else math.prod(input_shape[1:])
        return RecurrentLSNN(features, num_outputs, self, self.repeat(input_shape))

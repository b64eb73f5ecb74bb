"""Calibration after programming: re-fit a chip's digital parameters, its analog weights kept
exactly as programmed (drawn by a noise model, or read back from a real array).

Layer by layer, in the order the forward reaches them, each re-fitted module's output on the
calibration inputs is matched to the clean (programmed-target) network's output on the same
inputs, the earlier modules already corrected (sequential bias correction, Nagel et al. 2019,
"Data-free quantization through weight equalization and bias correction", ICCV, sec. 4.2, with
data instead of the BatchNorm prior; re-estimated normalisation statistics as AdaBN, Li et al.
2016, "Revisiting batch normalization for practical domain adaptation"):

- `gain` / `bias`: after every on-chip MVM layer a digital gain g and offset b per output
  column, y -> g y + b, fitted by least squares to the clean layer's output t (per column:
  g = cov(y, t) / var(y), b = mean(t) - g mean(y); noiseproof.calibration.columns);
- `norm`: every BatchNorm's running mean and variance set to the mean and (unbiased) variance
  of its inputs on the chip (all positions of the calibration inputs);
- `affine`: every BatchNorm / LayerNorm / GroupNorm's per-channel affine (weight w, bias c)
  refitted the same way on its output, folded into it: w -> g w, c -> g c + b;
- `input_range`: under an analog forward (noiseproof.analog) whose input or ADC ranges are
  calibrated, those ranges calibrated again with the chip's weights
  (noiseproof.analog_ranges.calibrate_ranges), before the fits above.

Under an analog forward the chip's passes run through its DAC, ADC, output noise and IR drop
(the fitted gains act after the read-out); the clean targets are the digital network's.

When every re-fitted module is called once per forward, the whole sequence is one forward of
the chip (each module fitted inside its own call, before the next one runs), plus one forward
of the clean network; a module called several times per forward (time steps of a spiking
network) is fitted on all its calls, one chip forward per module. Then, with `steps` > 0,
that many full-batch Adam steps on the task loss move only the re-fitted digital parameters.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from noiseproof.analog import AnalogForward, analog_forward, layer_names
from noiseproof.analog_ranges import calibrate_ranges
from noiseproof.calibration.columns import (
    corrected,
    fit_columns,
    per_channel,
    shaped,
)
from noiseproof.calibration.settings import NO_RANGES, CalibrationConfig, calibrated_ranges
from noiseproof.chip import Params, forward
from noiseproof.inputs import Inputs, count
from noiseproof.modes import evaluating
from noiseproof.tasks import Task

BATCH_NORMS = (nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d)
NORMS = (*BATCH_NORMS, nn.LayerNorm, nn.GroupNorm)


@dataclass(frozen=True)
class ChipEffects:
    """The analog forward a chip computes through (noiseproof.analog): the effects (with their
    input/ADC ranges attached), the conductance window of IR drop (None without it) and the
    generator its output noise is drawn from, in call order."""

    effects: AnalogForward
    generator: torch.Generator
    window: tuple[float, float] | None = None


@dataclass(frozen=True)
class Calibration:
    """What calibration re-fitted for one chip.

    columns: on-chip MVM layer name -> (gain [C], offset [C]), the digital correction after its
    read-out (noiseproof.calibration.columns.corrected); state: re-fitted digital tensors by
    their full names (BatchNorm running statistics, norm affine weights and biases), standing
    in for the model's own; forward: the analog effects the chip was calibrated under, with
    its re-calibrated input/ADC ranges (`input_range`), or None (no analog forward).
    """

    columns: dict[str, tuple[Tensor, Tensor]]
    state: dict[str, Tensor]
    forward: AnalogForward | None = None


@contextmanager
def chip_forward(
    model: nn.Module, names: Sequence[str], analog: ChipEffects | None
) -> Iterator[None]:
    """Within the block the on-chip MVM layers (their `weight` among `names`) compute through
    `analog` (noiseproof.analog.analog_forward); no effect with None."""
    if analog is None:
        yield
        return
    with analog_forward(model, names, analog.effects, analog.generator, analog.window):
        yield


@contextmanager
def applied(
    model: nn.Module,
    names: Sequence[str],
    calibration: Calibration,
    analog: ChipEffects | None = None,
) -> Iterator[None]:
    """Within the block, forwards of `model` (through a chip's tensors) compute the calibrated
    chip: the analog effects of `analog` with the calibration's ranges (when it calibrated
    them), then the per-column correction after each on-chip MVM layer, after the read-out."""
    if analog is not None and calibration.forward is not None:
        analog = ChipEffects(calibration.forward, analog.generator, analog.window)
    with chip_forward(model, names, analog), corrected(model, calibration.columns):
        yield


def calibrated_forward(
    model: nn.Module,
    chip: Mapping[str, Tensor],
    calibration: Calibration,
    x: Inputs,
    analog: ChipEffects | None = None,
) -> Tensor:
    """The outputs of the calibrated chip on `x`: `chip`'s on-chip tensors, the calibration's
    digital tensors, its per-column correction after each on-chip MVM layer (`applied`)."""
    with applied(model, list(chip), calibration, analog):
        return forward(model, {**calibration.state, **chip}, x)


def _chip_effects(
    model: nn.Module,
    chip: Mapping[str, Tensor],
    x: Inputs,
    params: tuple[str, ...],
    analog: ChipEffects | None,
) -> ChipEffects | None:
    """The analog forward the chip is calibrated under: `analog`'s, its calibrated input and
    ADC ranges re-calibrated on the chip's own weights with `input_range`
    (noiseproof.analog_ranges.calibrate_ranges on the calibration inputs); None without
    effects in the forward."""
    effects = None if analog is None else analog.effects
    if "input_range" in params and not calibrated_ranges(effects):
        raise ValueError(f"params: {NO_RANGES}")
    if effects is None or not effects.in_the_forward:
        return None
    if "input_range" in params:
        ranges = calibrate_ranges(
            model,
            list(chip),
            effects,
            x,
            params=dict(chip),
            ranges=effects.ranges,
            window=analog.window,
        )
        effects = effects.with_ranges(ranges)
    return ChipEffects(effects, analog.generator, analog.window)


def _stand_ins(
    model: nn.Module, params: tuple[str, ...], on_chip: set[str]
) -> tuple[dict[str, str], dict[str, str], Params]:
    """(stats modules, affine modules, copies of their tensors): the norm modules whose
    statistics (`norm`) or affine (`affine`) are re-fitted, those on the chip excepted."""
    stats, affine, state = {}, {}, {}
    for name, module in model.named_modules():
        if "norm" in params and isinstance(module, BATCH_NORMS) and module.track_running_stats:
            keys = [f"{name}.running_mean", f"{name}.running_var"]
            if not on_chip.intersection(keys):
                stats[name] = name
                state.update({k: module.get_buffer(k.rpartition(".")[2]).clone() for k in keys})
        if "affine" in params and isinstance(module, NORMS) and module.weight is not None:
            keys = [f"{name}.weight", f"{name}.bias"]
            if not on_chip.intersection(keys) and module.bias is not None:
                affine[name] = name
                state.update({f"{name}.weight": module.weight.detach().clone()})
                state.update({f"{name}.bias": module.bias.detach().clone()})
    return stats, affine, state


def calibrate_chip(
    model: nn.Module,
    clean: Mapping[str, Tensor],
    chip: Mapping[str, Tensor],
    x: Inputs,
    y: Tensor,
    settings: CalibrationConfig,
    task: Task,
    analog: ChipEffects | None = None,
) -> Calibration:
    """Re-fit the digital parameters `settings.params` of the chip whose on-chip tensors are
    `chip` (the same names as `clean`, the programmed targets) on calibration inputs x with
    targets y (module docstring). analog: the analog forward the chip computes through (its
    output noise drawn from analog.generator); the clean targets are the digital network's.
    The model itself is not modified. Deterministic: the same arguments (the generator in
    the same state) give the same calibration."""
    if not isinstance(settings, CalibrationConfig):
        raise TypeError(f"settings must be a CalibrationConfig, got {type(settings).__name__}")
    if set(chip) != set(clean):
        extra = sorted(set(chip) ^ set(clean))
        raise ValueError(f"chip must hold the same tensors as clean (differs on {extra[0]!r})")
    if count(x) < 1:
        raise ValueError("x must hold at least one calibration example")
    params = settings.params
    mvm = {name: model.get_submodule(name) for name in layer_names(model, list(clean))}
    columns_wanted = {"gain", "bias"} & set(params)
    outputs = {("out", n): m for n, m in mvm.items()} if columns_wanted else {}
    stats, affine, state = _stand_ins(model, params, set(clean))
    modules = dict(model.named_modules())
    outputs.update({("out", n): modules[n] for n in affine})
    inputs = {("in", n): modules[n] for n in stats}
    chip = {n: t.detach() for n, t in chip.items()}
    with torch.no_grad(), evaluating(model):
        effects = _chip_effects(model, chip, x, params, analog)
        targets, calls = _record(model, dict(clean), x, outputs, inputs)
        fitter = _Fitter(mvm, affine, state, targets, (params, effects))
        order = list(calls)
        once = all(n == 1 for n in calls.values())
        groups = [order] if once else [[key] for key in order]
        for group in groups:
            fitter.run(model, chip, x, outputs, inputs, group, inline=once)
    calibration = Calibration(fitter.columns, state, None if effects is None else effects.effects)
    if settings.steps:
        calibration = _descend(model, chip, calibration, x, y, settings, task, effects)
    return calibration


def _record(
    model: nn.Module,
    clean: Params,
    x: Inputs,
    outputs: dict[tuple[str, str], nn.Module],
    inputs: dict[tuple[str, str], nn.Module],
) -> tuple[dict[tuple[str, str], list[Tensor]], dict[tuple[str, str], int]]:
    """One clean forward: the outputs of the `outputs` modules at every call, and the calls of
    every re-fitted module (outputs and inputs), in the order they are first reached."""
    found: dict[tuple[str, str], list[Tensor]] = {}
    calls: dict[tuple[str, str], int] = {}

    def seen(key: tuple[str, str]) -> Callable[..., None]:
        def hook(module: nn.Module, args: tuple, out: Tensor | None = None) -> None:
            calls[key] = calls.get(key, 0) + 1
            if out is not None:
                found.setdefault(key, []).append(out.detach())

        return hook

    handles = [m.register_forward_pre_hook(seen(k)) for k, m in inputs.items()]
    handles += [m.register_forward_hook(seen(k)) for k, m in outputs.items()]
    try:
        forward(model, clean, x)
    finally:
        for handle in handles:
            handle.remove()
    return found, calls


class _Fitter:
    """The sequential fit of `calibrate_chip`: hooks on the chip's forward that collect the
    re-fitted modules' inputs/outputs, fit them (inside the call with `inline`, else after
    the forward) and apply what is fitted."""

    def __init__(
        self,
        mvm: dict[str, nn.Module],
        affine: dict[str, str],
        state: Params,
        targets: dict[tuple[str, str], list[Tensor]],
        how: tuple[tuple[str, ...], ChipEffects | None],
    ) -> None:
        """how: (the params re-fitted, the analog forward of the chip's passes or None)."""
        self.mvm, self.affine, self.state, self.targets = mvm, affine, state, targets
        params, self.analog = how
        self.gain, self.offset = "gain" in params, "bias" in params
        self.columns: dict[str, tuple[Tensor, Tensor]] = {}

    def run(
        self,
        model: nn.Module,
        chip: Params,
        x: Inputs,
        outputs: dict[tuple[str, str], nn.Module],
        inputs: dict[tuple[str, str], nn.Module],
        group: list[tuple[str, str]],
        inline: bool,
    ) -> None:
        """One chip forward fitting the modules of `group` (the earlier ones applied)."""
        seen: dict[tuple[str, str], list[Tensor]] = {key: [] for key in group}

        def before(key: tuple[str, str]) -> Callable[[nn.Module, tuple], None]:
            def hook(module: nn.Module, args: tuple) -> None:
                if key in seen:
                    seen[key].append(args[0].detach())
                    if inline:
                        self._fit(key, module, seen[key])

            return hook

        def after(key: tuple[str, str]) -> Callable[[nn.Module, tuple, Tensor], Tensor]:
            def hook(module: nn.Module, args: tuple, out: Tensor) -> Tensor:
                if key in seen:
                    seen[key].append(out.detach())
                    if inline:
                        out = self._fit(key, module, seen[key], out)
                elif key[1] in self.columns and key[1] in self.mvm:
                    gain, offset = self.columns[key[1]]
                    return _apply(module, gain, offset, out)
                return out

            return hook

        with chip_forward(model, list(chip), self.analog):  # its hooks first: ours see the ADC
            handles = [m.register_forward_pre_hook(before(k)) for k, m in inputs.items()]
            handles += [m.register_forward_hook(after(k)) for k, m in outputs.items()]
            try:
                forward(model, {**self.state, **chip}, x)
            finally:
                for handle in handles:
                    handle.remove()
        if not inline:
            modules = {**inputs, **outputs}
            for key in group:
                self._fit(key, modules[key], seen[key])

    def _fit(
        self, key: tuple[str, str], module: nn.Module, got: list[Tensor], out: Tensor | None = None
    ) -> Tensor | None:
        """Fit one module from what the chip gave it (`got`, every call so far); returns the
        corrected `out` (inline fits of an output)."""
        kind, name = key
        if kind == "in":  # BatchNorm statistics of its inputs on the chip (AdaBN)
            values = torch.cat([per_channel(module, t) for t in got])
            dtype = self.state[f"{name}.running_mean"].dtype
            self.state[f"{name}.running_mean"].copy_(values.mean(0).to(dtype))
            self.state[f"{name}.running_var"].copy_(values.var(0).to(dtype))
            return None
        chip = torch.cat([per_channel(module, t) for t in got])
        clean = torch.cat([per_channel(module, t) for t in self.targets[key]])
        if name in self.affine:
            gain, offset = fit_columns(chip, clean, True, True)
            weight, bias = self.state[f"{name}.weight"], self.state[f"{name}.bias"]
            folded = weight.double().reshape(-1) * gain
            bias.copy_(
                (bias.double().reshape(-1) * gain + offset).reshape(bias.shape).to(bias.dtype)
            )
            weight.copy_(folded.reshape(weight.shape).to(weight.dtype))
        else:
            gain, offset = fit_columns(chip, clean, self.gain, self.offset)
            dtype = got[0].dtype
            self.columns[name] = (gain.to(dtype), offset.to(dtype))
            gain, offset = self.columns[name]
        return (
            None if out is None else _apply(module, gain.to(out.dtype), offset.to(out.dtype), out)
        )


def _apply(module: nn.Module, gain: Tensor, offset: Tensor, out: Tensor) -> Tensor:
    """g * out + b per channel of `module`'s output."""
    return out * shaped(module, gain, out) + shaped(module, offset, out)


def _descend(
    model: nn.Module,
    chip: Params,
    calibration: Calibration,
    x: Inputs,
    y: Tensor,
    settings: CalibrationConfig,
    task: Task,
    analog: ChipEffects | None,
) -> Calibration:
    """`settings.steps` full-batch Adam steps (Kingma & Ba 2015) on the task loss over the
    re-fitted digital parameters alone: the column gains (`gain`), offsets (`bias`) and norm
    affine tensors (`affine`); statistics and on-chip tensors stay fixed."""
    params = settings.params
    columns = {
        name: (
            g.clone().requires_grad_("gain" in params),
            b.clone().requires_grad_("bias" in params),
        )
        for name, (g, b) in calibration.columns.items()
    }
    state = {name: t.clone() for name, t in calibration.state.items()}
    trained = [t for pair in columns.values() for t in pair if t.requires_grad]
    if "affine" in params:
        for name, tensor in state.items():
            if not name.endswith(("running_mean", "running_var")):
                trained.append(tensor.requires_grad_(True))
    if not trained:
        return calibration
    optimizer = torch.optim.Adam(trained, lr=settings.lr)
    with evaluating(model), torch.enable_grad():
        for _ in range(settings.steps):
            optimizer.zero_grad()
            now = Calibration(columns, state, calibration.forward)
            loss = task.loss(calibrated_forward(model, chip, now, x, analog), y)
            loss.backward()
            optimizer.step()
    return Calibration(
        {name: (g.detach(), b.detach()) for name, (g, b) in columns.items()},
        {name: t.detach() for name, t in state.items()},
        calibration.forward,
    )

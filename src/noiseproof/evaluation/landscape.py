"""Loss landscape along random relative directions and a scalar flatness (Buechel et al. 2022).

For each of `repeats` directions v ~ N(0, (scale * |theta|)^2) (one draw per parameter), the
loss and accuracy of f(x; theta + alpha * v) are measured for alpha on a grid in [-2, 2]
(paper: scale 0.2, 5 repeats). Flatter minima change less along such directions; the scalar
summary is the mean loss increase at alpha = +-flatness_alpha:

    flatness = mean over repeats and signs of [ L(theta +- a * v) - L(theta) ]   (a = 1 default)

(lower = flatter; our summary, the paper shows the curves only).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import torch
from pydantic import BaseModel, ConfigDict, Field, field_validator
from torch import Tensor, nn

from noiseproof.chip import ChipSelection, Params, chip_params, detached, forward
from noiseproof.devices import accumulator_dtype, model_device
from noiseproof.evaluation.arguments import (
    check_evaluation_arguments,
    check_generator,
    check_outputs_fit,
)
from noiseproof.inputs import Inputs, split, take, to
from noiseproof.modes import evaluating
from noiseproof.noise.base import standard_normal
from noiseproof.physical import limit_all
from noiseproof.plotting import pyplot, save_figure
from noiseproof.precision import autocast, check_precision
from noiseproof.seeding import generator as make_generator
from noiseproof.seeding import global_rng
from noiseproof.tasks import Task, tasks


class LandscapeConfig(BaseModel):
    """Random-direction landscape settings (defaults: Buechel et al. 2022, scale 0.2, 5 repeats).

    `examples` limits the evaluation examples per point (default 2000, our choice for cost);
    the alpha grid always gets 0 and +-flatness_alpha added.

    >>> import noiseproof as nf
    >>> config = nf.LandscapeConfig(scale=0.1)
    >>> config.alphas[:3], config.repeats, config.flatness_alpha
    ((-2.0, -1.75, -1.5), 5, 1.0)
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    scale: float = Field(
        0.2, gt=0.0, allow_inf_nan=False, description="relative std s of the directions"
    )
    alphas: tuple[float, ...] = Field(
        tuple(round(-2.0 + 0.25 * i, 2) for i in range(17)),
        min_length=1,
        description="step sizes along each direction",
    )
    repeats: int = Field(5, ge=1, description="random directions")
    examples: int | None = Field(2000, gt=0, description="evaluation examples (None: all)")
    flatness_alpha: float = Field(
        1.0, gt=0.0, allow_inf_nan=False, description="alpha of the flatness summary"
    )
    batch_size: int = Field(2000, ge=1, description="examples per forward chunk")

    @field_validator("alphas", mode="before")
    @classmethod
    def _alphas(cls, value: Any) -> Any:
        values = [value] if isinstance(value, int | float) else value
        for alpha in values:
            if isinstance(alpha, bool) or not isinstance(alpha, int | float):
                raise ValueError(f"alphas: {alpha!r} is not a number")
            if not math.isfinite(alpha):
                raise ValueError(f"alphas: {alpha!r} must be finite")
        return values

    def grid(self) -> list[float]:
        """Sorted alphas with 0 and +-flatness_alpha included."""
        a = self.flatness_alpha
        return sorted({float(x) for x in (*self.alphas, 0.0, a, -a)})


@torch.no_grad()
def loss_and_metric(
    model: nn.Module,
    params: Mapping[str, Tensor],
    x: Inputs,
    y: Tensor,
    batch_size: int,
    precision: str = "fp32",
    task: Task | None = None,
) -> tuple[float, float]:
    """Mean task loss and the task's primary metric (classification: accuracy) of
    f(.; params) on (x, y), in eval mode (modes restored), under `precision` autocast; summed
    on y's device and read once."""
    task = task or tasks.create("classification")
    dtype = accumulator_dtype(y.device)
    loss = torch.zeros((), dtype=dtype, device=y.device)
    sums = None
    with evaluating(model), autocast(y.device, precision):
        for xs, ys in zip(split(x, batch_size), y.split(batch_size), strict=True):
            outputs = forward(model, params, xs)
            loss += task.loss(outputs, ys).to(dtype) * len(ys)
            part = task.sums(outputs, ys)
            sums = part if sums is None else sums + part
    assert sums is not None, "y holds no examples"  # callers check (x, y) first
    metric = task.chip_metrics(sums.cpu())[task.primary.name]
    return float(loss) / len(y), float(metric)


def random_direction(params: Params, scale: float, generator: torch.Generator) -> Params:
    """v ~ N(0, (scale * |theta|)^2), independently per element."""
    return {n: scale * t.abs() * standard_normal(t, generator) for n, t in params.items()}


def loss_landscape(
    model: nn.Module,
    x: Inputs,
    y: Tensor,
    config: LandscapeConfig | None = None,
    *,
    generator: torch.Generator,
    selection: ChipSelection | None = None,
    params: Params | None = None,
    precision: str = "fp32",
    task: Task | str | dict | None = None,
) -> dict[str, Any]:
    """Loss and the task's primary metric M (classification: accuracy; task None: inferred
    from y) at theta + alpha * v for every alpha and direction, plus flatness.

    Returns `{'alphas': [A], 'loss': [R][A], 'metric': M, M: [R][A], 'flatness': float,
    'flatness_alpha', 'scale', 'repeats', 'examples', 'clean_loss', 'clean_<M>'}`.
    generator: the run's generator, torch.Generator().manual_seed(seed). Direction r is drawn
    from a generator derived from (its seed, 'landscape', r) (its initial_seed(), not its
    state): every model evaluated with the same seed sees the same normal draws where shapes
    agree, whatever was drawn before; a model drawing
    from the global state (torch.rand in forward) runs in a fork of it seeded from (seed,
    'landscape') and left as it was (noiseproof.seeding.global_rng). Runs on the
    model's device (data moved once, directions drawn there) under `precision` autocast.
    Neuron parameters at each point are kept in their physical range (noiseproof.physical;
    weights are not bounded).

    >>> import torch, noiseproof as nf
    >>> data = nf.load_dataset("digits")
    >>> _ = torch.manual_seed(0)
    >>> model = nf.build_model({"name": "mlp", "hidden": [16]}, data.input_shape, 10)
    >>> config = nf.LandscapeConfig(alphas=(-1.0, 0.0, 1.0), repeats=2)
    >>> curve = nf.loss_landscape(model, data.x_test, data.y_test, config,
    ...                           generator=nf.generator(0, "landscape"))
    >>> curve["alphas"], [loss[1] == curve["clean_loss"] for loss in curve["loss"]]
    ([-1.0, 0.0, 1.0], [True, True])
    """
    task = check_evaluation_arguments(model, x, y, "x", "y", task)
    check_precision(precision)
    seed = check_generator(generator).initial_seed()
    device = model_device(model)
    if config is not None and not isinstance(config, LandscapeConfig):
        raise TypeError(f"config must be a LandscapeConfig or None, got {type(config).__name__}")
    config = config or LandscapeConfig()
    theta = detached(params if params is not None else chip_params(model, selection))
    n = len(y) if config.examples is None else min(config.examples, len(y))
    x, y = to(take(x, slice(0, n)), device), y[:n].to(device)
    check_outputs_fit(model, theta, x, y, task)
    name = task.primary.name
    alphas = config.grid()
    losses, accuracies = [], []
    with global_rng(seed, "landscape", device=device):  # the user's own draws, if any
        for repeat in range(config.repeats):
            gen = make_generator(seed, "landscape", repeat, device=device)
            v = random_direction(theta, config.scale, gen)
            row_loss, row_acc = [], []
            for alpha in alphas:
                point = limit_all({name: t + alpha * v[name] for name, t in theta.items()})
                loss, acc = loss_and_metric(model, point, x, y, config.batch_size, precision, task)
                row_loss.append(loss)
                row_acc.append(acc)
            losses.append(row_loss)
            accuracies.append(row_acc)
    centre = alphas.index(0.0)
    a = config.flatness_alpha
    plus, minus = alphas.index(a), alphas.index(-a)
    rises = [(row[plus] + row[minus]) / 2 - row[centre] for row in losses]
    return {
        "alphas": alphas,
        "loss": losses,
        "metric": name,
        name: accuracies,
        "clean_loss": losses[0][centre],
        f"clean_{name}": accuracies[0][centre],
        "flatness": sum(rises) / len(rises),
        "flatness_alpha": a,
        "scale": config.scale,
        "repeats": config.repeats,
        "examples": n,
    }


def landscape_plot(curves: Mapping[str, dict[str, Any]], path: str | Path) -> Path:
    """Loss and the primary metric (accuracy in %) vs alpha, one line per method (mean over
    directions, band min..max)."""
    plt = pyplot()
    figure, (loss_axes, acc_axes) = plt.subplots(1, 2, figsize=(11, 4.2))
    name = next(iter(curves.values())).get("metric", "accuracy")
    percent = "accuracy" in name
    for label, record in curves.items():
        alphas = record["alphas"]
        for axes, key, factor in (
            (loss_axes, "loss", 1.0),
            (acc_axes, name, 100.0 if percent else 1.0),
        ):
            rows = [[factor * v for v in row] for row in record[key]]
            mean = [sum(col) / len(col) for col in zip(*rows, strict=True)]
            (line,) = axes.plot(alphas, mean, marker=".", label=label)
            axes.fill_between(
                alphas,
                [min(col) for col in zip(*rows, strict=True)],
                [max(col) for col in zip(*rows, strict=True)],
                color=line.get_color(),
                alpha=0.15,
            )
    any_record = next(iter(curves.values()))
    shown = f"test {name.replace('_', ' ')}{' (%)' if percent else ''}"
    for axes, ylabel in ((loss_axes, "test loss"), (acc_axes, shown)):
        axes.set_xlabel(f"alpha (direction v ~ N(0, ({any_record['scale']:g}|theta|)^2))")
        axes.set_ylabel(ylabel)
        axes.grid(alpha=0.3)
        axes.legend()
    loss_axes.set_title("Loss along random directions (band: min..max over directions)")
    acc_axes.set_title(f"{name.replace('_', ' ').capitalize()} along random directions")
    figure.tight_layout()
    return save_figure(figure, Path(path))


def flatness_rows(curves: Mapping[str, dict[str, Any]]) -> tuple[list[str], list[list[str]]]:
    """Header and rows: method, clean loss, mean loss rise at +-alpha, primary metric at
    +-alpha (accuracy in %)."""
    name = next(iter(curves.values())).get("metric", "accuracy") if curves else "accuracy"
    percent = "accuracy" in name
    shown = f"{name.replace('_', ' ')} at +-alpha{' (%)' if percent else ''}"
    header = ["method", "clean loss", "flatness (loss rise)", shown]
    rows = []
    for label, r in curves.items():
        alphas: Sequence[float] = r["alphas"]
        a = r["flatness_alpha"]
        cols = [alphas.index(a), alphas.index(-a)]
        acc = [row[c] for row in r[name] for c in cols]
        rows.append(
            [
                label,
                f"{r['clean_loss']:.4f}",
                f"{r['flatness']:.4f}",
                f"{100 * sum(acc) / len(acc):.2f}" if percent else f"{sum(acc) / len(acc):.4g}",
            ]
        )
    return header, rows

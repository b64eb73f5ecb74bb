"""Targeted parameter attack at inference (Buechel et al. 2022, sec. 4 "targeted attacks").

The worst chip within a relative budget: projected sign-gradient ascent on the task loss,

    theta*_0     = theta + initial_std * |theta| * N(0,1)
    theta*_{k+1} = clip(theta*_k + zeta * |theta| / n_steps * sign(grad CE(f(x; theta*_k), y)))

inside |theta* - theta| <= zeta * |theta|, then the accuracy of f(.; theta*) on the evaluation
set, reported next to the accuracy under random relative Gaussian mismatch of the same zeta,
theta * (1 + zeta * N(0,1)) (the paper's "random perturbation of the same size").
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from pydantic import BaseModel, ConfigDict, Field, field_validator
from torch import Tensor, nn

from noiseproof.ascent import ascend, starting_offsets
from noiseproof.bounds import attack_split, relative_box_point
from noiseproof.chip import (
    ChipSelection,
    Params,
    chip_params,
    detached,
    forward,
)
from noiseproof.devices import accumulator_dtype, model_device
from noiseproof.evaluation.arguments import (
    check_evaluation_arguments,
    check_generator,
    check_outputs_fit,
)
from noiseproof.evaluation.clean import clean_metrics
from noiseproof.evaluation.metrics import accuracy_summary
from noiseproof.evaluation.transfers import run_transfers
from noiseproof.inputs import Inputs, split, take, to
from noiseproof.modes import evaluating
from noiseproof.noise.gaussian import RelativeGaussian
from noiseproof.plotting import pyplot, save_figure
from noiseproof.precision import autocast, check_precision
from noiseproof.seeding import generator as make_generator
from noiseproof.seeding import global_rng
from noiseproof.tasks import Task, tasks


class AttackConfig(BaseModel):
    """Targeted attack settings: budgets, ascent steps, data used, random comparison draws.

    Defaults follow Buechel et al. 2022 (10 sign-ascent steps from theta + 0.001|theta|N);
    the attack's gradient uses `examples` evaluation examples (default all; our choice, the
    paper does not say), and `transfers` random chips of the same zeta are drawn for comparison.

    >>> import noiseproof as nf
    >>> config = nf.AttackConfig(zetas=(0.1, 0.2), n_steps=20)
    >>> config.zetas, config.n_steps, config.transfers
    ((0.1, 0.2), 20, 10)
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    zetas: tuple[float, ...] = Field((0.1,), min_length=1, description="relative budgets")
    n_steps: int = Field(10, ge=1, le=1000, description="sign-ascent steps")
    initial_std: float = Field(
        0.001, ge=0.0, allow_inf_nan=False, description="relative std of the starting point"
    )
    transfers: int = Field(10, ge=1, description="random-mismatch chips at the same zeta")
    examples: int | None = Field(
        None, gt=0, description="evaluation examples the attack's gradient uses (None: all)"
    )
    batch_size: int = Field(1000, ge=1, description="examples per forward/backward chunk")

    @field_validator("zetas", mode="before")
    @classmethod
    def _zetas(cls, value: Any) -> Any:
        values = [value] if isinstance(value, int | float) else value
        for zeta in values:
            if isinstance(zeta, bool) or not isinstance(zeta, int | float):
                raise ValueError(f"zetas: {zeta!r} is not a number")
            if not math.isfinite(zeta) or zeta <= 0:
                raise ValueError(f"zetas: {zeta!r} must be finite and > 0")
        return values


def mean_task_loss(
    model: nn.Module,
    params: Params,
    x: Inputs,
    y: Tensor,
    batch_size: int,
    wrt: Sequence[Tensor] = (),
    precision: str = "fp32",
    task: Task | None = None,
) -> tuple[Tensor, list[Tensor | None]]:
    """Mean task loss over (x, y) (`task`; None: classification), evaluated in chunks, and its
    gradient w.r.t. the tensors `wrt` (None for one the loss does not depend on).

    Each chunk's gradient is taken as soon as its loss is computed (so memory holds one chunk's
    graph) with torch.autograd.grad, which writes no `.grad` anywhere: the model's own
    parameters are left as they were. The returned loss is detached and stays on y's device
    (summed there, float64; float32 on MPS); forwards run under `precision` autocast.
    """
    task = task or tasks.create("classification")
    total = torch.zeros((), dtype=accumulator_dtype(y.device), device=y.device)
    grads: list[Tensor | None] = [None] * len(wrt)
    for xs, ys in zip(split(x, batch_size), y.split(batch_size), strict=True):
        with autocast(y.device, precision):
            loss = task.loss(forward(model, params, xs), ys) * (len(ys) / len(y))
        if wrt:
            parts = torch.autograd.grad(loss, list(wrt), retain_graph=True, allow_unused=True)
            grads = [
                g if p is None else p if g is None else g + p
                for g, p in zip(grads, parts, strict=True)
            ]
        total += loss.detach()
    return total, grads


def attack_parameters(
    model: nn.Module,
    params: Params,
    x: Inputs,
    y: Tensor,
    zeta: float,
    generator: torch.Generator,
    *,
    n_steps: int = 10,
    initial_std: float = 0.001,
    batch_size: int = 1000,
    precision: str = "fp32",
    task: Task | None = None,
) -> Params:
    """theta* maximising the mean task loss on (x, y) within |theta* - theta| <= zeta * |theta|.

    Projected sign-gradient ascent (noiseproof.ascent) in relative coordinates
    r = (theta* - theta) / |theta|: r_0 = initial_std * N(0,1) (no draw when 0),
    r <- clip(r + zeta/n_steps * sign(grad_r CE), -zeta, zeta),
    i.e. the step zeta * |theta| / n_steps * sign(grad_theta* CE) of the paper followed by the
    projection onto the box. The model is put in eval mode (restored after). Returns detached
    tensors; the box holds exactly (up to float rounding of theta + |theta| * r). The start is
    drawn on the generator's device; forwards run under `precision` autocast.
    """
    if not (math.isfinite(zeta) and zeta > 0):
        raise ValueError(f"zeta must be finite and > 0, got {zeta}")
    theta = detached(params)

    def gradient(offset: Params) -> list[Tensor | None]:
        point = relative_box_point(theta, offset)
        return mean_task_loss(
            model,
            point,
            x,
            y,
            batch_size,
            wrt=list(offset.values()),
            precision=precision,
            task=task,
        )[1]

    start = starting_offsets(theta, zeta, initial_std, generator)
    with evaluating(model):
        offset = ascend(
            start,
            gradient,
            step=dict.fromkeys(theta, zeta / n_steps),
            low=dict.fromkeys(theta, -zeta),
            high=dict.fromkeys(theta, zeta),
            n_steps=n_steps,
        )
    with torch.no_grad():
        return relative_box_point(theta, offset)


def targeted_attack(
    model: nn.Module,
    x: Inputs,
    y: Tensor,
    config: AttackConfig | None = None,
    *,
    generator: torch.Generator,
    selection: ChipSelection | None = None,
    params: Params | None = None,
    precision: str = "fp32",
    task: Task | str | dict | None = None,
) -> list[dict[str, Any]]:
    """One record per zeta: the task's metrics under the targeted attack and under random
    mismatch (task: noiseproof.tasks; None infers it from y).

    Record keys: zeta, n_steps, examples (used by the attack), metric (the task's primary
    metric M: accuracy, mse, perplexity...), clean_<m> and attacked_<m> for every metric m of
    the task, clean_loss, attacked_loss (mean task loss on the evaluation set), random_<M>
    (summary over `transfers` chips of theta * (1 + zeta * N(0,1))), seconds.
    generator: the run's generator, torch.Generator().manual_seed(seed). Draws come from
    generators derived from (its seed, 'attack' | 'attack-random', zeta) (its initial_seed(),
    not its state: each zeta's draws depend only on the seed and zeta, whatever was drawn
    before); a model drawing from the global state (torch.rand in forward) runs in a fork of it
    seeded from (seed, 'attack') and left as it was (noiseproof.seeding.global_rng). The
    attack moves parameters only: buffers on the chip (BatchNorm statistics) keep their values.
    Runs on the model's device: (x, y) moved there once, generators made there; forwards under
    `precision` (fp32, bf16, fp16) autocast.

    >>> import torch, noiseproof as nf
    >>> data = nf.load_dataset("digits")
    >>> _ = torch.manual_seed(0)
    >>> model = nf.build_model({"name": "mlp", "hidden": [16]}, data.input_shape, 10)
    >>> config = nf.AttackConfig(zetas=(0.3,), n_steps=5, transfers=4)
    >>> [row] = nf.targeted_attack(model, data.x_test, data.y_test, config,
    ...                            generator=nf.generator(0, "attack"))
    >>> row["zeta"], row["attacked_loss"] > row["clean_loss"]  # the attack raises the loss
    (0.3, True)
    """
    task = check_evaluation_arguments(model, x, y, "x", "y", task)
    check_precision(precision)
    seed = check_generator(generator).initial_seed()
    device = model_device(model)
    x, y = to(x, device), y.to(device)
    if config is not None and not isinstance(config, AttackConfig):
        raise TypeError(f"config must be an AttackConfig or None, got {type(config).__name__}")
    config = config or AttackConfig()
    clean = detached(params if params is not None else chip_params(model, selection))
    weights, on_chip_buffers = attack_split(model, clean)
    n = len(y) if config.examples is None else min(config.examples, len(y))
    check_outputs_fit(model, clean, x, y, task)
    with global_rng(seed, "attack", device=device):  # the user's own draws, if any
        measured = clean_metrics(model, x, y, task, config.batch_size, clean, precision, seed)
        metric = task.primary
        records = []
        for zeta in config.zetas:
            started = time.perf_counter()
            point = on_chip_buffers | attack_parameters(
                model,
                weights,
                take(x, slice(0, n)),
                y[:n],
                zeta,
                make_generator(seed, "attack", zeta, device=device),
                n_steps=config.n_steps,
                initial_std=config.initial_std,
                batch_size=config.batch_size,
                precision=precision,
                task=task,
            )
            attacked = clean_metrics(model, x, y, task, config.batch_size, point, precision, seed)
            random = run_transfers(
                model,
                RelativeGaussian(zeta=zeta),
                x,
                y,
                config.transfers,
                make_generator(seed, "attack-random", zeta, device=device),
                params=clean,
                batch_size=config.batch_size,
                precision=precision,
                task=task,
            )
            with torch.no_grad(), evaluating(model):
                clean_loss, _ = mean_task_loss(
                    model, clean, x, y, config.batch_size, precision=precision, task=task
                )
                attacked_loss, _ = mean_task_loss(
                    model, point, x, y, config.batch_size, precision=precision, task=task
                )
            records.append(
                {
                    "zeta": zeta,
                    "n_steps": config.n_steps,
                    "examples": n,
                    "metric": metric.name,
                    **{f"clean_{name}": value for name, value in measured.items()},
                    **{f"attacked_{name}": value for name, value in attacked.items()},
                    "clean_loss": float(clean_loss),
                    "attacked_loss": float(attacked_loss),
                    "random_transfers": config.transfers,
                    f"random_{metric.name}": accuracy_summary(random.metrics[metric.name]),
                    "seconds": time.perf_counter() - started,
                }
            )
        return records


def attack_plot(records: list[dict[str, Any]], path: str | Path) -> Path:
    """The primary metric vs zeta per method: targeted attack (solid) and random mismatch
    (dashed); accuracies in %."""
    name = records[0].get("metric", "accuracy") if records else "accuracy"
    scale = 100 if "accuracy" in name else 1
    plt = pyplot()
    figure, axes = plt.subplots(figsize=(6.4, 4.2))
    methods = list(dict.fromkeys(r["method"] for r in records))
    for method in methods:
        rows = sorted((r for r in records if r["method"] == method), key=lambda r: r["zeta"])
        zetas = [r["zeta"] for r in rows]
        (line,) = axes.plot(
            zetas, [scale * r[f"attacked_{name}"] for r in rows], marker="o", label=method
        )
        axes.plot(
            zetas,
            [scale * r[f"random_{name}"]["mean"] for r in rows],
            marker="s",
            linestyle="--",
            color=line.get_color(),
        )
    axes.set_xlabel("relative budget zeta")
    axes.set_ylabel(f"test {name.replace('_', ' ')}{' (%)' if scale == 100 else ''}")
    if name == "perplexity":
        axes.set_yscale("log")
    axes.set_title("Targeted attack (solid) vs random mismatch of the same zeta (dashed)")
    axes.grid(alpha=0.3)
    axes.legend()
    return save_figure(figure, Path(path))


def attack_rows(records: list[dict[str, Any]]) -> tuple[list[str], list[list[str]]]:
    """Header and rows: method, seed, zeta, clean, attacked and random (mean ± std) values of
    the primary metric (accuracies in %)."""
    name = records[0].get("metric", "accuracy") if records else "accuracy"
    scale, unit = (100, " (%)") if "accuracy" in name else (1, f" {name}")
    header = ["method", "seed", "zeta", f"clean{unit}", f"attacked{unit}", f"random mismatch{unit}"]

    def show(value: float) -> str:
        return f"{scale * value:.2f}" if scale == 100 else f"{value:.4g}"

    rows = [
        [
            r["method"],
            str(r.get("seed", "")),
            f"{r['zeta']:g}",
            show(r[f"clean_{name}"]),
            show(r[f"attacked_{name}"]),
            f"{show(r[f'random_{name}']['mean'])} ± {show(r[f'random_{name}']['std'])}",
        ]
        for r in records
    ]
    return header, rows

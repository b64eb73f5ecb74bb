"""CorrectNet's second stage end to end on one model: measure, place, train, measure again.

Given a trained model (e.g. with the `lipschitz` method) and a noise model at one level:
1. the model is evaluated under noise on the test split;
2. each requested search (RL, greedy, exhaustive; noiseproof.methods.correctnet.search) picks
   a placement on the validation split, or the given layers are taken;
3. each chosen compensation is trained with the full budget (noiseproof.methods.correctnet.
   training) and evaluated on the same test chips. Used by `noiseproof correct`.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from torch import nn

from noiseproof.chip import ChipSelection
from noiseproof.data.base import Dataset
from noiseproof.devices import model_device
from noiseproof.evaluation.clean import clean_accuracy
from noiseproof.evaluation.metrics import accuracy_summary
from noiseproof.evaluation.transfers import run_transfers
from noiseproof.methods.correctnet.compensation import Compensated
from noiseproof.methods.correctnet.cost import overhead
from noiseproof.methods.correctnet.layers import candidate_layers
from noiseproof.methods.correctnet.search import PlacementEvaluator, search
from noiseproof.methods.correctnet.settings import CorrectConfig
from noiseproof.methods.correctnet.training import train_compensation
from noiseproof.noise.base import NoiseModel
from noiseproof.seeding import derive_seed, generator


def fit_compensation(
    model: nn.Module,
    layers: list[str],
    data: Dataset,
    noise: NoiseModel,
    config: CorrectConfig,
    *,
    selection: ChipSelection | None,
    seed: int,
    batch_size: int = 2000,
) -> tuple[Compensated, dict[str, Any]]:
    """Wrap `model` with compensation after `layers` and train it with the full budget.

    The best compensation on the validation chips is kept (see `train_compensation`).
    Returns (the trained Compensated model, the training record).
    """
    wrapped = Compensated(model, layers, data.input_shape, config.compensation, seed=seed)
    fit = train_compensation(
        wrapped,
        data,
        noise,
        config.training,
        seed=derive_seed(seed, "compensation"),
        selection=selection,
        val_examples=config.placement.val_examples,
        eval_batch_size=batch_size,
    )
    return wrapped, fit


def correct(
    model: nn.Module,
    data: Dataset,
    noise: NoiseModel,
    config: CorrectConfig,
    *,
    transfers: int,
    selection: ChipSelection | None,
    seed: int,
    batch_size: int = 2000,
    layers: list[str] | None = None,
    log: Callable[[str], None] = print,
) -> tuple[dict[str, Any], dict[str, Compensated]]:
    """Evaluate `model` under `noise`, then place, train and evaluate compensation.

    layers: compensate exactly these (no search); else each of config.placement.strategies.
    Returns (results, {label: trained Compensated model}); accuracies are on the test split
    with `transfers` chips, all rows on the same noise draws.
    """
    started = time.perf_counter()
    x, y = data.x_test, data.y_test
    clean = clean_accuracy(model, x, y, batch_size)

    def test_accuracy(m: nn.Module) -> dict[str, float]:
        chips = run_transfers(
            m,
            noise,
            x,
            y,
            transfers,
            generator(seed, "correct-test", device=model_device(m)),
            selection=selection,
            batch_size=batch_size,
        )
        return accuracy_summary(chips.accuracy)

    base = test_accuracy(model)
    results: dict[str, Any] = {
        "noise": noise.spec(),
        "level": noise.level,
        "transfers": transfers,
        "clean_accuracy": clean,
        "uncompensated": {"accuracy": base, "relative": base["mean"] / clean},
        "placements": {},
    }
    log(f"noise-free {100 * clean:.2f}%, under noise {100 * base['mean']:.2f}% (no compensation)")
    candidates = list(config.placement.candidates) or candidate_layers(model, selection)
    chosen: dict[str, tuple[list[str], dict[str, Any]]] = {}
    if layers is not None:
        chosen["given"] = (list(layers), {"strategy": "given"})
    else:
        evaluator = PlacementEvaluator(
            model,
            data,
            noise,
            config,
            candidates,
            selection=selection,
            seed=seed,
            batch_size=batch_size,
        )
        for strategy in config.placement.strategies:
            t0 = time.perf_counter()
            found = search(
                strategy, evaluator, len(candidates), config.placement, seed, model_device(model)
            )
            info = {
                "strategy": strategy,
                "val_reward": found.reward,
                "evaluations": found.evaluations,
                "search_seconds": time.perf_counter() - t0,
                **evaluator.details[found.mask],
            }
            chosen[strategy] = (found.layers(candidates), info)
            log(
                f"{strategy}: layers {found.layers(candidates)} (val reward {found.reward:.4f}, "
                f"{found.evaluations} placements evaluated, {info['search_seconds']:.1f} s)"
            )
        results["candidates"] = candidates
        results["search_table"] = [
            {"mask": list(m), **d} for m, d in sorted(evaluator.details.items())
        ]
    trained: dict[str, Compensated] = {}
    for label, (names, info) in chosen.items():
        wrapped, fit = fit_compensation(
            model, names, data, noise, config, selection=selection, seed=seed, batch_size=batch_size
        )
        acc = test_accuracy(wrapped)
        cost = overhead(wrapped, data.input_shape)
        results["placements"][label] = {
            **info,
            "layers": names,
            "accuracy": acc,
            "relative": acc["mean"] / clean,
            "overhead": cost,
            "training": fit,
        }
        trained[label] = wrapped
        log(
            f"{label}: under noise {100 * acc['mean']:.2f}% = {100 * acc['mean'] / clean:.1f}% of "
            f"noise-free; overhead {cost['params_percent']:.2f}% params, "
            f"{cost['macs_percent']:.2f}% MACs"
        )
    results["seconds"] = time.perf_counter() - started
    return results, trained

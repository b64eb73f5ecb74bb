"""CorrectNet's second stage: search where compensation goes, train it, measure it.

Given a trained model (e.g. with the `lipschitz` method) and a noise model at one level:
1. every candidate placement (mask over layers) is scored on the validation split by training
   its compensation for a short budget and running a few transfers: reward = accuracy under
   noise / noise-free accuracy - cost_weight * overhead (fraction of the model's MACs or
   parameters);
2. each requested search (RL, greedy, exhaustive; noiseproof.correctnet.placement) picks a mask;
3. the chosen compensation is trained with the full budget and evaluated on the test split.
Compensation is trained under a fresh noise draw every step with every original weight frozen
(requires_grad off, optimiser over the compensation only, BatchNorm statistics not updated).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor, nn

from noiseproof.chip import ChipSelection, chip_params, detached, forward
from noiseproof.config import apply_override, default_config, read_yaml
from noiseproof.correctnet.compensation import (
    Compensated,
    clean_outputs,
    overhead,
)
from noiseproof.correctnet.placement import (
    CachedReward,
    Mask,
    SearchResult,
    exhaustive_search,
    greedy_search,
    reinforce_search,
)
from noiseproof.correctnet.settings import (
    CompensationTraining,
    CorrectConfig,
    PlacementConfig,
)
from noiseproof.data.base import Dataset
from noiseproof.errors import NoiseproofError
from noiseproof.evaluation.clean import clean_accuracy
from noiseproof.evaluation.metrics import accuracy_summary
from noiseproof.evaluation.transfers import run_transfers
from noiseproof.noise.base import NoiseModel
from noiseproof.registry import validated
from noiseproof.seeding import generator
from noiseproof.tasks import task_loss


def split_config(
    config_file: str | None, assignments: tuple[str, ...]
) -> tuple[dict[str, Any], tuple[str, ...], CorrectConfig]:
    """Default <- YAML; its 'correct' section (and --set correct.* items) split off.

    Returns (raw experiment config, the other --set assignments, validated CorrectConfig).
    """
    raw = default_config()
    if config_file:
        raw = {**raw, **read_yaml(config_file)}
    section = {"correct": raw.pop("correct", None) or {}}
    rest = []
    for assignment in assignments:
        if assignment.strip().startswith("correct."):
            apply_override(section, assignment)
        else:
            rest.append(assignment)
    if not isinstance(section["correct"], dict):
        raise NoiseproofError("config: 'correct' must be a mapping of settings")
    settings = validated(CorrectConfig, "config correct", **section["correct"])
    return raw, tuple(rest), settings


def candidate_layers(model: nn.Module, selection: ChipSelection | None) -> list[str]:
    """Names of the on-chip Linear/ConvNd layers, in forward-registration order."""
    modules = dict(model.named_modules())
    names = []
    for param in chip_params(model, selection):
        owner = param.rpartition(".")[0]
        if isinstance(modules.get(owner), nn.Linear | nn.Conv1d | nn.Conv2d | nn.Conv3d):
            names.append(owner)
    return list(dict.fromkeys(names))


def check_layers(model: nn.Module, layers: list[str]) -> None:
    """NoiseproofError unless every name is a Linear/ConvNd layer of `model`."""
    modules = dict(model.named_modules())
    for name in layers:
        if not isinstance(modules.get(name), nn.Linear | nn.Conv1d | nn.Conv2d | nn.Conv3d):
            known = ", ".join(candidate_layers(model, None))
            raise NoiseproofError(
                f"compensation: no layer named {name!r} in the model (Linear/Conv layers: {known})"
            )


def compensation_loss(
    model: Compensated,
    noisy: dict[str, Tensor],
    x: Tensor,
    y: Tensor,
    training: CompensationTraining,
) -> Tensor:
    """The compensation objective on one batch through one noisy chip.

    features: sum over compensated layers of ||z_l - t_l||^2 / ||t_l||^2 (batch means), z_l the
    corrected noisy output, t_l the noise-free output of the same layer: the modules learn to
    restore the clean feature maps (our reading of CorrectNet's "correct the noisy feature
    maps"). task: CE of the compensated noisy network. both: the sum.
    """
    targets = clean_outputs(model.base, model.layers, x) if training.loss != "task" else {}
    model.record = {}
    try:
        logits = forward(model, noisy, x)
        recorded = model.record
    finally:
        model.record = None
    loss = task_loss(logits, y) if training.loss != "features" else logits.new_zeros(())
    for key, target in targets.items():
        error = (recorded[key] - target).pow(2).mean()
        loss = loss + error / target.pow(2).mean().clamp_min(1e-12)
    return loss


def train_compensation(
    model: Compensated,
    data: Dataset,
    noise: NoiseModel,
    training: CompensationTraining,
    gen: torch.Generator,
    *,
    selection: ChipSelection | None = None,
    steps: int | None = None,
    validate: Callable[[Compensated], float] | None = None,
) -> dict[str, float]:
    """Train `model.comp` under fresh noise draws; the original weights stay bit-identical.

    Each step: a random batch, one new draw of `noise` on the on-chip original parameters,
    `compensation_loss` of the compensated noisy forward, an Adam step on the compensation
    parameters only.
    The base module runs in eval mode (BatchNorm uses and keeps its running statistics).
    validate: a score (e.g. validation accuracy under noise) taken before training, every
    `training.eval_every` steps and at the end; the best-scoring compensation is kept, so
    the untrained (identity) compensation is the floor. Under heavy noise CE can fall while
    accuracy falls too (the correction learns to flatten confidently wrong logits).
    """
    steps = training.steps if steps is None else steps
    comp = model.compensation_parameters()
    if not comp:
        return {"steps": 0, "seconds": 0.0, "final_loss": float("nan")}
    chip = detached(chip_params(model, selection))  # Compensated keeps 'comp.*' off the chip
    frozen = [(p, p.requires_grad) for p in model.base.parameters()]
    optimizer = torch.optim.Adam(comp, lr=training.lr)
    started = time.perf_counter()
    losses: list[float] = []
    best_score, best_step, best_state = float("-inf"), 0, None

    def checkpoint(step: int) -> None:
        nonlocal best_score, best_step, best_state
        if validate is None:
            return
        score = validate(model)
        model.comp.train()
        if score > best_score:
            best_score, best_step = score, step
            best_state = {k: v.detach().clone() for k, v in model.comp.state_dict().items()}

    try:
        for p, _ in frozen:
            p.requires_grad_(False)
        model.base.eval()
        model.comp.train()
        checkpoint(0)
        n = len(data.x_train)
        for step in range(1, steps + 1):
            index = torch.randint(n, (min(training.batch_size, n),), generator=gen)
            noisy = noise.sample(chip, gen)
            loss = compensation_loss(
                model, noisy, data.x_train[index], data.y_train[index], training
            )
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            losses.append(float(loss.detach()))
            if step % training.eval_every == 0 or step == steps:
                checkpoint(step)
        if best_state is not None:
            model.comp.load_state_dict(best_state)
    finally:
        for p, flag in frozen:
            p.requires_grad_(flag)
        model.eval()
    tail = losses[-max(1, len(losses) // 10) :]
    return {
        "steps": steps,
        "seconds": time.perf_counter() - started,
        "final_loss": sum(tail) / len(tail),
        "best_step": best_step if validate is not None else steps,
        "best_validation": best_score if validate is not None else float("nan"),
    }


def validation_score(
    data: Dataset,
    noise: NoiseModel,
    config: CorrectConfig,
    *,
    selection: ChipSelection | None,
    seed: int,
    batch_size: int = 2000,
) -> Callable[[Compensated], float] | None:
    """Mean accuracy on the validation split over a few fixed chips (None without a split).

    The same `validation_transfers` draws every call (common random numbers), on the first
    `placement.val_examples` validation examples.
    """
    if not len(data.x_val):
        return None
    keep = config.placement.val_examples or len(data.x_val)
    x, y = data.x_val[:keep], data.y_val[:keep]

    def score(model: Compensated) -> float:
        return noisy_accuracy(
            model,
            x,
            y,
            noise,
            config.training.validation_transfers,
            generator(seed, "compensation-validation"),
            selection=selection,
            batch_size=batch_size,
        )["mean"]

    return score


def noisy_accuracy(
    model: nn.Module,
    x: Tensor,
    y: Tensor,
    noise: NoiseModel,
    transfers: int,
    gen: torch.Generator,
    *,
    selection: ChipSelection | None,
    batch_size: int = 2000,
) -> dict[str, float]:
    """Accuracy summary over `transfers` chips; a Compensated model keeps 'comp.*' digital."""
    result = run_transfers(
        model, noise, x, y, transfers, gen, selection=selection, batch_size=batch_size
    )
    return accuracy_summary(result.accuracy)


class PlacementEvaluator:
    """Reward of a placement mask on the validation split, memoised (each mask trained once).

    reward(m) = mean accuracy under noise / noise-free accuracy - cost_weight * overhead(m),
    overhead as a fraction of the model's MACs (or parameters). Every mask trains from the
    same seed and is scored on the same noise draws (common random numbers).
    """

    def __init__(
        self,
        model: nn.Module,
        data: Dataset,
        noise: NoiseModel,
        config: CorrectConfig,
        candidates: list[str],
        *,
        selection: ChipSelection | None,
        seed: int,
        batch_size: int = 2000,
    ) -> None:
        if not len(data.x_val):
            raise NoiseproofError("placement search needs a validation split (val_fraction > 0)")
        self.model, self.data, self.noise, self.config = model, data, noise, config
        self.candidates, self.selection, self.seed = candidates, selection, seed
        self.batch_size = batch_size
        keep = config.placement.val_examples or len(data.x_val)
        self.x, self.y = data.x_val[:keep], data.y_val[:keep]
        self.clean = clean_accuracy(model, self.x, self.y, batch_size)
        self.details: dict[Mask, dict[str, Any]] = {}
        self.validate = validation_score(
            data, noise, config, selection=selection, seed=seed, batch_size=batch_size
        )

    def layers(self, mask: Mask) -> list[str]:
        return [name for name, chosen in zip(self.candidates, mask, strict=True) if chosen]

    def __call__(self, mask: Mask) -> float:
        mask = tuple(bool(m) for m in mask)
        if mask not in self.details:
            self.details[mask] = self._score(mask)
        return self.details[mask]["reward"]

    def _score(self, mask: Mask) -> dict[str, Any]:
        placement = self.config.placement
        wrapped = Compensated(
            self.model,
            self.layers(mask),
            self.data.input_shape,
            self.config.compensation,
            seed=self.seed,
        )
        train_compensation(
            wrapped,
            self.data,
            self.noise,
            self.config.training,
            generator(self.seed, "placement-train"),
            selection=self.selection,
            steps=placement.search_steps,
            validate=self.validate,
        )
        acc = noisy_accuracy(
            wrapped,
            self.x,
            self.y,
            self.noise,
            placement.search_transfers,
            generator(self.seed, "placement-eval"),
            selection=self.selection,
            batch_size=self.batch_size,
        )
        cost = overhead(wrapped, self.data.input_shape)
        fraction = cost[f"{placement.cost}_percent"] / 100.0
        relative = acc["mean"] / max(self.clean, 1e-12)
        return {
            "layers": self.layers(mask),
            "val_accuracy": acc["mean"],
            "relative": relative,
            "overhead_fraction": fraction,
            "reward": relative - placement.cost_weight * fraction,
        }


def search(
    strategy: str,
    evaluator: Callable[[Mask], float],
    n_layers: int,
    config: PlacementConfig,
    seed: int,
) -> SearchResult:
    """Run one placement search over `n_layers` candidates with its own distinct-mask count."""
    reward = CachedReward(evaluator)
    if strategy == "rl":
        return reinforce_search(
            reward,
            n_layers,
            episodes=config.episodes,
            batch=config.batch,
            lr=config.rl_lr,
            prior=config.rl_prior,
            prior_scale=config.rl_prior_scale,
            refine_answer=config.rl_refine,
            generator=generator(seed, "placement-rl"),
        )
    if strategy == "greedy":
        return greedy_search(reward, n_layers)
    return exhaustive_search(reward, n_layers)


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
) -> tuple[Compensated, dict[str, float]]:
    """Wrap `model` with compensation after `layers` and train it with the full budget.

    The best compensation on the validation chips is kept (see `train_compensation`).
    Returns (the trained Compensated model, the training record).
    """
    validate = validation_score(
        data, noise, config, selection=selection, seed=seed, batch_size=batch_size
    )
    wrapped = Compensated(model, layers, data.input_shape, config.compensation, seed=seed)
    fit = train_compensation(
        wrapped,
        data,
        noise,
        config.training,
        generator(seed, "compensation"),
        selection=selection,
        validate=validate,
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
        return noisy_accuracy(
            m,
            x,
            y,
            noise,
            transfers,
            generator(seed, "correct-test"),
            selection=selection,
            batch_size=batch_size,
        )

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
            found = search(strategy, evaluator, len(candidates), config.placement, seed)
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

"""The reward of a placement on the validation split, and the searches that maximise it.

reward(m) = mean accuracy under noise / noise-free accuracy - cost_weight * overhead(m), the
overhead as a fraction of the model's MACs (or parameters). Each mask's compensation is trained
for `search_steps` from the same seed and scored on the same noise draws (common random
numbers); rewards are memoised, so each mask is trained once.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import nn

from noiseproof.chip import ChipSelection
from noiseproof.data.base import Dataset
from noiseproof.devices import model_device
from noiseproof.errors import NoiseproofError
from noiseproof.evaluation.clean import clean_accuracy
from noiseproof.evaluation.metrics import accuracy_summary
from noiseproof.evaluation.transfers import run_transfers
from noiseproof.inputs import take
from noiseproof.methods.correctnet.compensation import Compensated
from noiseproof.methods.correctnet.cost import overhead
from noiseproof.methods.correctnet.placement import (
    CachedReward,
    Mask,
    SearchResult,
    exhaustive_search,
    greedy_search,
    reinforce_search,
)
from noiseproof.methods.correctnet.settings import CorrectConfig, PlacementConfig
from noiseproof.methods.correctnet.training import train_compensation
from noiseproof.noise.base import NoiseModel
from noiseproof.seeding import derive_seed, generator


class PlacementEvaluator:
    """Reward of a placement mask on the validation split, memoised (each mask trained once)."""

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
        if not len(data.y_val):
            raise NoiseproofError("placement search needs a validation split (val_fraction > 0)")
        self.model, self.data, self.noise, self.config = model, data, noise, config
        self.candidates, self.selection, self.seed = candidates, selection, seed
        self.batch_size = batch_size
        keep = config.placement.val_examples or len(data.y_val)
        self.x, self.y = take(data.x_val, slice(0, keep)), data.y_val[:keep]
        self.clean = clean_accuracy(model, self.x, self.y, batch_size)
        self.details: dict[Mask, dict[str, Any]] = {}

    def layers(self, mask: Mask) -> list[str]:
        """The candidate layers a mask selects."""
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
            seed=derive_seed(self.seed, "placement-train"),
            selection=self.selection,
            steps=placement.search_steps,
            val_examples=placement.val_examples,
            eval_batch_size=self.batch_size,
        )
        chips = run_transfers(
            wrapped,
            self.noise,
            self.x,
            self.y,
            placement.search_transfers,
            generator(self.seed, "placement-eval", device=model_device(self.model)),
            selection=self.selection,
            batch_size=self.batch_size,
        )
        accuracy = accuracy_summary(chips.accuracy)["mean"]
        cost = overhead(wrapped, self.data.input_shape)
        fraction = cost[f"{placement.cost}_percent"] / 100.0
        relative = accuracy / max(self.clean, 1e-12)
        return {
            "layers": self.layers(mask),
            "val_accuracy": accuracy,
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
    device: torch.device | None = None,
) -> SearchResult:
    """Run one placement search over `n_layers` candidates with its own distinct-mask count;
    the RL policy's draws come from a generator on `device` (None: the CPU)."""
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
            generator=generator(seed, "placement-rl", device=device),
        )
    if strategy == "greedy":
        return greedy_search(reward, n_layers)
    return exhaustive_search(reward, n_layers)

"""Settings of CorrectNet's second stage: compensation shape, its training, the placement search.

YAML key `correct` of `noiseproof correct`, and the `correct` field of the `correctnet` method.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from noiseproof.methods.correctnet.compensation import CompensationSpec


class CompensationTraining(BaseModel):
    """How compensation is trained (by the one trainer): Adam over its parameters only, a fresh
    noise draw every step, constant learning rate, the best validation check kept."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    steps: int = Field(600, ge=1, description="optimiser steps of the final compensation training")
    batch_size: int = Field(128, ge=1, description="examples per step")
    lr: float = Field(1e-3, gt=0, allow_inf_nan=False, description="Adam learning rate")
    loss: Literal["task", "features", "both"] = Field(
        "task",
        description="'features': restore each compensated layer's noise-free output (MSE, "
        "relative); 'task': CE of the noisy network; 'both': their sum",
    )
    eval_every: int = Field(
        100, ge=1, description="steps between validation checks (best compensation kept)"
    )
    validation_transfers: int = Field(4, ge=1, description="transfers per validation check")


class PlacementConfig(BaseModel):
    """The placement search: candidates, reward, and the searches' budgets."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    strategies: tuple[Literal["rl", "greedy", "exhaustive"], ...] = Field(
        ("rl", "greedy"), description="searches to run, each trained and reported"
    )
    candidates: tuple[str, ...] = Field(
        (), description="layer names that may get compensation (default: every on-chip layer)"
    )
    cost: Literal["macs", "params"] = Field("macs", description="overhead measure in the reward")
    cost_weight: float = Field(1.0, ge=0, allow_inf_nan=False, description="reward per overhead")
    search_steps: int = Field(150, ge=1, description="compensation training steps per candidate")
    search_transfers: int = Field(8, ge=1, description="transfers per candidate (validation)")
    val_examples: int | None = Field(2000, ge=1, description="validation examples used to score")
    episodes: int = Field(32, ge=1, description="REINFORCE episodes")
    batch: int = Field(4, ge=2, description="REINFORCE episodes per policy update")
    rl_lr: float = Field(
        1.0, gt=0, allow_inf_nan=False, description="REINFORCE step per normalised advantage"
    )
    rl_prior: Literal["scan", "uniform"] = Field(
        "scan", description="policy start: 'scan' scores each single layer first; 'uniform'"
    )
    rl_prior_scale: float = Field(
        2.0, ge=0, allow_inf_nan=False, description="largest start logit of the 'scan' prior"
    )
    rl_refine: bool = Field(
        True, description="finish RL with a local search (single-layer flips) from its best"
    )


class CorrectConfig(BaseModel):
    """Settings of `noiseproof correct` beyond the experiment config (YAML key 'correct')."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    compensation: CompensationSpec = CompensationSpec()
    training: CompensationTraining = CompensationTraining()
    placement: PlacementConfig = PlacementConfig()

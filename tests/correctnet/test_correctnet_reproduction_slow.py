"""Reduced CorrectNet reproduction on LeNet-5 / MNIST (slow: run with -m slow).

A 2-epoch LeNet-5 on 20,000 MNIST images, log-normal sigma 0.5, the example's placement cost
weight (0.5): compensation placed by REINFORCE must recover a clear part of the accuracy lost to
variation and match greedy search (155 s on the 2-core CPU; with cost weight 1.0 and 400 steps
both searches chose the last layer only and gained 0.65 points).
"""

import pytest

from noiseproof.chip import ChipSelection
from noiseproof.data import datasets
from noiseproof.experiments.jobs import train_job
from noiseproof.methods import methods
from noiseproof.methods.correctnet.pipeline import correct
from noiseproof.methods.correctnet.settings import CorrectConfig
from noiseproof.models import models
from noiseproof.noise import noise_models
from noiseproof.training.config import TrainConfig


@pytest.mark.slow
def test_lenet5_compensation_recovers_accuracy_under_lognormal_variation():
    data = datasets.create({"name": "mnist", "max_train": 20000, "max_test": 2000}).load()
    noise = noise_models.create({"name": "lognormal", "sigma": 0.5})
    model, _ = train_job(
        models.create("lenet5"),
        data,
        methods.create({"name": "lipschitz", "weight": 1.0, "target": 2.0}),
        TrainConfig(epochs=2),
        noise=noise,
        selection=ChipSelection(),
        seed=0,
        progress=False,
    )
    config = CorrectConfig(
        compensation={"kernel_size": 1},
        training={"steps": 1000},
        placement={
            "strategies": ["rl", "greedy"],
            "cost_weight": 0.5,
            "search_steps": 150,
            "episodes": 16,
        },
    )
    results, _ = correct(
        model, data, noise, config, transfers=20, selection=ChipSelection(), seed=0, log=print
    )
    base = results["uncompensated"]["accuracy"]["mean"]
    rl, greedy = results["placements"]["rl"], results["placements"]["greedy"]
    assert rl["val_reward"] >= greedy["val_reward"] - 1e-9
    assert rl["accuracy"]["mean"] > base + 0.02

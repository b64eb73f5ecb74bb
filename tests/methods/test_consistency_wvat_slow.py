"""Reduced Hou et al. 2024 comparison on Fashion-MNIST (slow: run with -m slow).

What it checks is what held in examples/hou2024 on every seed: under additive noise scaled to
the layer maximum at eta = 0.2, each noise-aware method (forward noise, consistency, WVAT)
keeps far more accuracy than standard training. The paper's +2% of consistency over forward
noise training is not asserted: it did not hold on this MLP (consistency was below forward noise
on every seed; it was above on a BatchNorm ResNet-20, see examples/hou2024/README.md).
"""

from __future__ import annotations

import pytest

from noiseproof.config import ExperimentConfig
from noiseproof.experiments.compare import run_compare


@pytest.mark.slow
def test_noise_aware_methods_beat_standard_at_eta_02(tmp_path):
    config = ExperimentConfig.parse(
        {
            "dataset": {
                "name": "fashion-mnist",
                "val_fraction": 0.0,
                "max_test": 2000,
            },
            "model": {"name": "mlp", "hidden": [256, 256]},
            "methods": [
                "standard",
                {"name": "noise_injection", "level": 0.2},
                "consistency",
                "wvat",
            ],
            "noise": [{"name": "additive_gaussian", "eta": 0.2, "scale": "layer"}],
            "levels": [0.2],
            "transfers": 30,
            "seeds": [0],
            "train": {"epochs": 15, "batch_size": 128, "lr": 0.001},
        }
    )
    results = run_compare(config, tmp_path / "run", progress=False, log=lambda _: None)
    accuracy = {job["method"]: job["accuracy"]["mean"] for job in results["jobs"]}
    for method in ("noise_injection", "consistency", "wvat"):
        # examples/hou2024 (same recipe, full test set): the gap was >= 16 points on every
        # seed; 10 leaves room for the 2000-image test subset. With 5 epochs on 20k images the
        # undertrained standard network kept 72% and the gap shrank to 0-10 points.
        assert accuracy[method] > accuracy["standard"] + 0.10, (method, accuracy)

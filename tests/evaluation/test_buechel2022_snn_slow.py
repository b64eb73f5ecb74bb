"""The spiking reproduction of Buechel et al. 2022 (examples/buechel2022-snn), small budget.

The paper's claim: LSNNs trained with the robust methods (forward noise, adversarial, both)
keep far more accuracy under relative mismatch zeta 0.7 than standard training. Here: the
example's config cut to 30 epochs and 40 chips at zeta 0 and 0.7 (weights on the chip).
Slow (about 3-4 min on a shared 2-core CPU): run with `pytest -m slow tests/evaluation`.
"""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from noiseproof.config import ExperimentConfig, read_yaml
from noiseproof.experiments.compare import run_compare

CONFIG = Path(__file__).resolve().parents[2] / "examples" / "buechel2022-snn" / "config.yaml"
CHIPS = 40


@pytest.mark.slow
def test_robust_lsnn_keeps_more_accuracy_at_zeta_07(tmp_path):
    raw = read_yaml(CONFIG)
    raw["train"]["epochs"] = 30
    raw.update(transfers=CHIPS, levels=[0.0, 0.7], noise=["relative_gaussian"])
    results = run_compare(
        ExperimentConfig.parse(raw), tmp_path / "run", progress=False, log=lambda _: None
    )
    acc = {(j["method"], j["level"]): j["accuracy"] for j in results["jobs"]}
    standard = acc[("standard", 0.7)]
    for robust in (
        "forward_noise_0.3",
        "adversarial_0.25",
        "forward_noise_0.3+adversarial_0.1",
    ):
        other = acc[(robust, 0.7)]
        # margin: 3 standard errors of the difference of two means over CHIPS chips each
        margin = 3 * math.sqrt((standard["std"] ** 2 + other["std"] ** 2) / CHIPS)
        assert other["mean"] > standard["mean"] + margin, (robust, other, standard)

"""The Buechel et al. 2022 reproduction (examples/buechel2022, reduced budget): paper's claims.

Slow (the run took 690 s on a shared 2-core CPU): run with `pytest -m slow tests/evaluation`.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from noiseproof.config import ExperimentConfig, read_yaml
from noiseproof.experiments.compare import run_compare

CONFIG = Path(__file__).resolve().parents[2] / "examples" / "buechel2022" / "config.yaml"


@pytest.mark.slow
def test_buechel2022_claims(tmp_path):
    config = ExperimentConfig.parse(read_yaml(CONFIG))
    results = run_compare(config, tmp_path / "run", progress=False, log=lambda _: None)
    acc = {
        (j["method"], j["level"]): j["accuracy"]["mean"]
        for j in results["jobs"]
        if j["noise"] == "relative_gaussian"
    }
    standard, adversarial = "standard", "adversarial_0.25"
    forward, both = "forward_noise_0.3", "forward_noise_0.3+adversarial_0.1"
    # zeta 0.7: standard falls far below adversarial and forward noise; the combination leads
    assert acc[(adversarial, 0.7)] > acc[(standard, 0.7)] + 0.05
    assert acc[(forward, 0.7)] > acc[(standard, 0.7)] + 0.05
    assert acc[(both, 0.7)] >= max(acc[(adversarial, 0.7)], acc[(forward, 0.7)]) - 0.02
    # targeted attack at zeta 0.1: adversarial keeps far more accuracy than standard
    attacked = {a["method"]: a["attacked_accuracy"] for a in results["attacks"]}
    assert attacked[adversarial] > attacked[standard] + 0.1
    # adversarially trained networks are flatter
    assert results["flatness"][adversarial] < results["flatness"][standard]

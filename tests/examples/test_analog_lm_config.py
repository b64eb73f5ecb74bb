"""examples/analog-lm/config.yaml runs end to end through the real CLI at a tiny budget (every
method, both PCM entries at every read time, the relative Gaussian sweep), and its model is the
size its README says."""

from __future__ import annotations

import json
import math
from pathlib import Path

from click.testing import CliRunner

from noiseproof.cli import cli
from noiseproof.commands.options import build_config

CONFIG = Path(__file__).resolve().parents[2] / "examples" / "analog-lm" / "config.yaml"

TINY = [
    "train.epochs=1",
    "train.steps_per_epoch=2",
    "train.batch_size=4",
    "dataset.max_test=2",
    "model.n_embd=32",
    "transfers=2",
]


def test_config_runs_at_tiny_budget(tmp_path):
    out = tmp_path / "run"
    overrides = [arg for key in TINY for arg in ("--set", key)]
    args = ["compare", "--config", str(CONFIG), *overrides, "--no-progress", "--out", str(out)]
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 0, result.output
    for noise in ("pcm", "pcm_nocomp", "relative_gaussian"):
        assert f"perplexity under {noise} " in result.output
    jobs = json.loads((out / "results.json").read_text())["jobs"]
    methods = {"standard", "noise_injection", "adversarial", "consistency"}
    assert {j["method"] for j in jobs} == methods
    times = [1.0, 3600.0, 86400.0, 2592000.0, 31536000.0]
    for noise, levels in [("pcm", times), ("pcm_nocomp", times)]:
        cells = {(j["method"], j["level"]) for j in jobs if j["noise"] == noise}
        assert cells == {(m, t) for m in methods for t in levels}
    assert len(jobs) == 4 * (5 + 5 + 5)
    for job in jobs:
        assert job["task"]["name"] == "language_model"
        assert job["transfers"] == 2
        assert math.isfinite(job["metrics"]["perplexity"]["worst"])


def test_model_has_one_to_five_million_parameters():
    config = build_config(str(CONFIG), {}, ())
    model = config.model.create((config.model.block_size,), 155)  # english-text: 155 chars
    assert 1_000_000 <= sum(p.numel() for p in model.parameters()) <= 5_000_000

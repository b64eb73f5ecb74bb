"""compare with a `calibration:` section: every chip is also calibrated on its own draw and
reported as '<method>-calibrated' beside the uncalibrated chips (same chips, same seeds); a
run split in shards gives the per-chip values of one process; a chip calibrated in compare is
the chip `noiseproof calibrate --chip K` calibrates."""

from __future__ import annotations

import json

import pytest
import yaml
from click.testing import CliRunner

from noiseproof.cli import cli
from noiseproof.config import ExperimentConfig
from noiseproof.errors import NoiseproofError
from noiseproof.training.checkpoints import load_checkpoint

CONFIG = {
    "dataset": "digits",
    "model": {"name": "mlp", "hidden": [32]},
    "methods": ["standard"],
    "noise": ["pcm"],
    "levels": [31536000],
    "transfers": 4,
    "train": {"epochs": 10},
    "calibration": {"examples": 128},
}


def compare(tmp_path, name: str, *extra: str) -> tuple[list[dict], object]:
    config = tmp_path / "config.yaml"
    config.write_text(yaml.safe_dump(CONFIG))
    out = tmp_path / name
    result = CliRunner().invoke(
        cli, ["compare", "--config", str(config), "--out", str(out), "--no-progress", *extra]
    )
    assert result.exit_code == 0, result.output
    assert "standard-calibrated" in result.output
    assert "standard-calibrated" in (out / "results.csv").read_text()
    assert "standard-calibrated" in (out / "report.md").read_text()
    return json.loads((out / "results.json").read_text())["jobs"], out


@pytest.fixture(scope="module")
def run(tmp_path_factory) -> tuple[list[dict], object]:
    """(records, run folder) of the run in one process."""
    return compare(tmp_path_factory.mktemp("whole"), "run")


def test_shards_give_the_values_of_one_process(run, tmp_path):
    whole, _ = run
    sharded, _ = compare(tmp_path, "sharded", "--transfers-per-job", "3")
    assert [r["method"] for r in whole] == ["standard", "standard-calibrated"]
    for one, split in zip(whole, sharded, strict=True):
        assert one["method"] == split["method"]
        assert one["per_chip"] == split["per_chip"]
    calibrated = whole[1]
    assert calibrated["calibrated_from"] == "standard"
    assert calibrated["calibration"]["examples"] == 128
    assert calibrated["clean"] == whole[0]["clean"]


def test_the_calibrated_chip_is_the_one_calibrate_gives(run, tmp_path):
    """Chip 2 of the run, calibrated by `noiseproof calibrate` from the run's checkpoint."""
    whole, folder = run
    checkpoint = str(folder / whole[0]["checkpoint_path"])
    out = tmp_path / "chip2.pt"
    args = ["calibrate", checkpoint, "--noise", "pcm", "--level", "31536000", "--chip", "2"]
    result = CliRunner().invoke(cli, [*args, "--examples", "128", "--out", str(out)])
    assert result.exit_code == 0, result.output
    test = load_checkpoint(out)[1]["calibration"]["test"]
    assert test["chip"]["accuracy"] == pytest.approx(whole[0]["per_chip"]["accuracy"][2], abs=1e-12)
    assert test["calibrated"]["accuracy"] == pytest.approx(
        whole[1]["per_chip"]["accuracy"][2], abs=1e-12
    )


def test_under_forward_effects_shards_agree_and_input_ranges_are_refitted(tmp_path):
    """DAC, ADC and output noise with calibrated input ranges: chips calibrated under them
    (input ranges re-fitted on each chip), shards equal to one process."""
    forward = {"dac_bits": 6, "adc_bits": 6, "output_noise": 0.02}
    forward["input_range"] = {"mode": "calibrated"}
    calibration = {"examples": 128, "params": ["gain", "bias", "input_range"]}
    config = {**CONFIG, "forward": forward, "calibration": calibration, "transfers": 3}
    runs = []
    for name, extra in (("one", []), ("shards", ["--transfers-per-job", "2"])):
        (tmp_path / f"{name}.yaml").write_text(yaml.safe_dump(config))
        out = tmp_path / name
        args = ["compare", "--config", str(tmp_path / f"{name}.yaml"), "--out", str(out)]
        result = CliRunner().invoke(cli, [*args, "--no-progress", *extra])
        assert result.exit_code == 0, result.output
        runs.append(json.loads((out / "results.json").read_text())["jobs"])
    one, shards = runs
    assert [r["method"] for r in one] == ["standard", "standard-calibrated"]
    for a, b in zip(one, shards, strict=True):
        assert a["per_chip"] == b["per_chip"]
    assert one[1]["metrics"]["accuracy"]["mean"] > one[0]["metrics"]["accuracy"]["mean"]


def test_calibrations_the_forward_cannot_serve_are_refused():
    sliced = {**CONFIG, "forward": {"bits_per_slice": 2, "weight_slices": 2}}
    with pytest.raises(NoiseproofError, match="bit-sliced weights"):
        ExperimentConfig.parse(sliced)
    ranges = {**CONFIG, "calibration": {"params": ["gain", "input_range"]}}
    with pytest.raises(NoiseproofError, match="input_range re-calibrates forward.input_range"):
        ExperimentConfig.parse(ranges)
    with pytest.raises(NoiseproofError, match="unknown parameter 'range'"):
        ExperimentConfig.parse({**CONFIG, "calibration": {"params": ["gain", "range"]}})


def test_calibration_runs_in_the_runs_fork_of_the_global_generators():
    """A model drawing from torch's global generator in its forward (eval mode too): its
    calibrated chips are the same twice, whatever the caller's global state, which is left
    as it was."""
    import torch
    from torch import nn

    import noiseproof as nf
    from noiseproof.calibration.settings import CalibrationConfig
    from noiseproof.experiments.calibrated import calibrated_transfers

    class Jittery(nn.Module):
        def __init__(self):
            super().__init__()
            self.body = nn.Sequential(nn.Flatten(), nn.Linear(64, 16), nn.ReLU())
            self.head = nn.Linear(16, 10)

        def forward(self, x):
            features = self.body(x)
            return self.head(features + 0.5 * torch.rand_like(features))

    data = nf.load_dataset("digits")
    torch.manual_seed(0)
    model, task = Jittery(), nf.create_task("classification")
    noise = nf.create_noise({"name": "relative_gaussian", "zeta": 0.3})
    calibration = CalibrationConfig(examples=64)

    def run(caller_seed: int):
        torch.manual_seed(caller_seed)
        before = torch.get_rng_state()
        result = calibrated_transfers(
            model,
            data,
            noise,
            calibration,
            seed=0,
            noise_label="g",
            first_chip=0,
            chips=2,
            settings=nf.RunSettings.build(),
            task=task,
        )
        assert torch.equal(torch.get_rng_state(), before)  # the caller's stream never moved
        return result.sums

    assert torch.equal(run(1), run(2))


def test_a_calibrated_chip_costs_the_training_of_its_method(run):
    """Calibration re-fits digital parameters of a trained network: in the comparisons (and so
    in recommend) '<method>-calibrated' costs its method's training, not nothing."""
    _, out = run
    level = json.loads((out / "results.json").read_text())["comparisons"][0]
    rows = {row["method"]: row for row in level["methods"]}
    assert rows["standard"]["cost"]["flops"] > 0 and rows["standard"]["cost_recorded"]
    assert rows["standard-calibrated"]["cost"] == rows["standard"]["cost"]
    assert rows["standard-calibrated"]["cost_recorded"]

"""`noiseproof calibrate`: chip K is the chip `evaluate` draws as chip K; calibration helps a
drifted PCM chip by more than the test's own noise; the readback path round-trips with
`noiseproof export`; the calibrated checkpoint loads with weights_only and `evaluate` gives
its accuracy; bad input is one line and exit 2."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch
from click.testing import CliRunner

from noiseproof.calibration.readback import readback_chip
from noiseproof.calibration.split import calibration_split
from noiseproof.chip import chip_params
from noiseproof.cli import cli
from noiseproof.data.base import Dataset
from noiseproof.restore import model_from_checkpoint
from noiseproof.training.checkpoints import load_checkpoint, save_checkpoint

YEAR = "31536000"


def invoke(*args: str):
    return CliRunner().invoke(cli, [str(a) for a in args])


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory) -> Path:
    """An MLP (one hidden layer of 32) trained 10 epochs on digits."""
    path = tmp_path_factory.mktemp("trained") / "mlp.pt"
    result = invoke(
        "train",
        "--dataset",
        "digits",
        "--set",
        "model={name: mlp, hidden: [32]}",
        "--method",
        "standard",
        "--seed",
        "0",
        "--epochs",
        "10",
        "--no-progress",
        "--out",
        path,
    )
    assert result.exit_code == 0, result.output
    return path


def calibrate(checkpoint: Path, out: Path, *args: str) -> dict:
    """Run calibrate; the saved checkpoint's calibration record."""
    result = invoke("calibrate", checkpoint, "--out", out, *args)
    assert result.exit_code == 0, result.output
    _, meta = load_checkpoint(out)
    return meta["calibration"]


def evaluated_chip(checkpoint: Path, out: Path, chip: int, *extra: str) -> float:
    """Chip `chip`'s accuracy as `evaluate` reports it (pcm read a day after programming)."""
    args = ["--noise", "pcm", "--levels", "86400", "--transfers", str(chip + 1), *extra]
    result = invoke("evaluate", checkpoint, *args, "--out", out, "--no-progress")
    assert result.exit_code == 0, result.output
    job = json.loads((out / "results.json").read_text())["jobs"][0]
    return job["per_chip"]["accuracy"][chip]


def test_chip_k_is_the_chip_evaluate_draws(checkpoint, tmp_path):
    """The uncalibrated accuracy calibrate reports for chip 2 is evaluate's per-chip value."""
    record = calibrate(
        checkpoint, tmp_path / "c.pt", "--noise", "pcm", "--level", "86400", "--chip", "2"
    )
    chip = evaluated_chip(checkpoint, tmp_path / "ev", 2)
    assert chip == pytest.approx(record["test"]["chip"]["accuracy"], abs=1e-12)


def test_under_forward_effects_chip_k_is_the_chip_evaluate_draws(checkpoint, tmp_path):
    """With DAC, ADC, output noise and calibrated input ranges: the chip's test accuracy is
    evaluate's chip 1 (same draw, same output-noise stream); input ranges are re-fitted."""
    forward = ["--set", "forward={dac_bits: 6, adc_bits: 6, output_noise: 0.05}"]
    forward += ["--set", "forward.input_range={mode: calibrated}"]
    chip = ["--noise", "pcm", "--level", "86400", "--chip", "1"]
    args = [*chip, *forward, "--params", "gain,bias,input_range"]
    record = calibrate(checkpoint, tmp_path / "c.pt", *args)
    assert set(record["analog_ranges"]["inputs"]) == {"1", "3"}
    chip = evaluated_chip(checkpoint, tmp_path / "ev", 1, *forward)
    assert chip == pytest.approx(record["test"]["chip"]["accuracy"], abs=1e-12)


def test_calibration_beats_a_drifted_chip_and_evaluates_as_saved(checkpoint, tmp_path):
    """PCM read a year after programming: drift shrinks every column's gain. The calibrated
    chip is better than the chip by more than twice the standard error of a paired
    difference on the test split (McNemar: sqrt(discordant) / n <= sqrt(n) / n)."""
    out = tmp_path / "year.pt"
    record = calibrate(checkpoint, out, "--noise", "pcm", "--level", YEAR, "--chip", "0")
    n = 359  # digits' test split
    gain = record["test"]["calibrated"]["accuracy"] - record["test"]["chip"]["accuracy"]
    assert gain > 2 * math.sqrt(n) / n, record["test"]
    payload = torch.load(out, weights_only=True)
    assert payload["format"] == "noiseproof-checkpoint/1"
    result = invoke("evaluate", out, "--out", tmp_path / "ev", "--no-progress")
    assert result.exit_code == 0, result.output
    job = json.loads((tmp_path / "ev" / "results.json").read_text())["jobs"][0]
    assert (job["noise"], job["level"], job["transfers"]) == ("relative_gaussian", 0.0, 1)
    assert job["per_chip"]["accuracy"][0] == pytest.approx(
        record["test"]["calibrated"]["accuracy"], abs=1e-12
    )


@pytest.fixture(scope="module")
def exported(checkpoint, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("exported") / "tiles"
    result = invoke(
        "export", checkpoint, "--tile", "16x8", "--mapping", "pcm", "--bias", "row", "--out", out
    )
    assert result.exit_code == 0, result.output
    return out


def test_the_readback_of_an_export_is_the_programmed_network(checkpoint, exported, tmp_path):
    """Conductances exactly on target (no noise): the weights read back are the checkpoint's
    (float64 round trip, then float32) and the calibrated chip is the clean network."""
    state, meta = load_checkpoint(checkpoint)
    model = model_from_checkpoint(state, meta)
    chip = readback_chip(exported, model)
    for name, tensor in chip_params(model).items():
        torch.testing.assert_close(chip[name], tensor.detach(), rtol=0, atol=1e-6)
    record = calibrate(checkpoint, tmp_path / "r.pt", "--readback", exported)
    assert record["test"]["chip"] == pytest.approx(record["test"]["clean"], abs=1e-12)
    assert record["test"]["calibrated"] == pytest.approx(record["test"]["clean"], abs=1e-12)


def broken_copy(exported: Path, tmp_path: Path) -> Path:
    folder = tmp_path / "broken"
    folder.mkdir()
    for file in exported.iterdir():
        (folder / file.name).write_bytes(file.read_bytes())
    return folder


def edit_manifest(folder: Path, change) -> None:
    manifest = json.loads((folder / "manifest.json").read_text())
    change(manifest)
    (folder / "manifest.json").write_text(json.dumps(manifest))


def negative(folder: Path) -> None:
    file = folder / "1.weight.npz"
    with np.load(file) as arrays:
        g_plus, g_minus = arrays["g_plus_us"].copy(), arrays["g_minus_us"]
    g_plus[0, 0, 0, 0] = -0.5
    np.savez(file, g_plus_us=g_plus, g_minus_us=g_minus)


def renamed(manifest: dict) -> None:
    manifest["layers"][0]["name"] = "9.weight"


def reshaped(manifest: dict) -> None:
    manifest["layers"][0]["shape"] = [32, 63]


def retiled(manifest: dict) -> None:
    manifest["tile"]["rows"] = 32


@pytest.mark.parametrize(
    ("breaks", "message"),
    [
        (lambda f: (f / "1.weight.npz").unlink(), "the tiles of 1.weight are missing"),
        (negative, "negative conductance (-0.5 uS)"),
        (lambda f: edit_manifest(f, renamed), "has no layer '1.weight'"),
        (lambda f: edit_manifest(f, reshaped), "layer '1.weight' is [32, 63]"),
        (lambda f: edit_manifest(f, retiled), "32x8 tiles"),
        (lambda f: (f / "manifest.json").unlink(), "holds no manifest.json"),
    ],
    ids=["missing-tiles", "negative", "layer-name", "shape", "tile-size", "no-manifest"],
)
def test_a_readback_that_does_not_fit_is_one_line(checkpoint, exported, tmp_path, breaks, message):
    folder = broken_copy(exported, tmp_path)
    breaks(folder)
    result = invoke("calibrate", checkpoint, "--readback", folder, "--out", tmp_path / "x.pt")
    assert result.exit_code == 2, result.output
    assert result.output.startswith("error: ") and result.output.count("\n") == 1, result.output
    assert message in result.output


def test_a_readback_of_another_checkpoint_is_refused(checkpoint, exported, tmp_path):
    other = tmp_path / "other.pt"
    state, meta = load_checkpoint(checkpoint)
    save_checkpoint(other, state, {**meta, "seed": 1})
    result = invoke("calibrate", other, "--readback", exported, "--out", tmp_path / "x.pt")
    assert result.exit_code == 2
    assert "was exported from another checkpoint" in result.output


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--chip", "0", "--examples", "0"], "--examples: must be >= 1, got 0"),
        (["--chip", "-1"], "--chip: must be >= 0, got -1"),
        (["--chip", "0", "--params", "gain,scale"], "unknown parameter 'scale'"),
        ([], "give --chip K (a simulated chip) or --readback DIR"),
        (["--chip", "0", "--examples", "5000"], "the training split of digits holds 1294"),
    ],
)
def test_bad_arguments_are_one_line(checkpoint, tmp_path, args, message):
    result = invoke("calibrate", checkpoint, "--noise", "pcm", *args, "--out", tmp_path / "x.pt")
    assert result.exit_code == 2, result.output
    assert result.output.startswith("error: ") and result.output.count("\n") == 1, result.output
    assert message in result.output


def test_a_calibration_split_never_holds_test_examples(caplog):
    """A dataset whose test split repeats training examples: the draw passes over them (a
    warning says how many) and refuses, in one line, more examples than remain."""
    gen = torch.Generator().manual_seed(0)
    x, y = torch.randn(40, 3, generator=gen), torch.randint(0, 2, (40,), generator=gen)
    data = Dataset("overlap", x, y, x[:0], y[:0], x[:10], y[:10], 2)
    with pytest.raises(ValueError, match="holds 30 that are not also test examples"):
        calibration_split(data, 40, seed=0)
    with caplog.at_level("WARNING", logger="noiseproof"):
        cal_x, _ = calibration_split(data, 30, seed=0)
    assert sorted(cal_x[:, 0].tolist()) == sorted(x[10:, 0].tolist())
    assert "10 drawn training examples equal test examples" in caplog.text
    disjoint = Dataset("disjoint", x[10:], y[10:], x[:0], y[:0], x[:10], y[:10], 2)
    cal_x, _ = calibration_split(disjoint, 30, seed=0)
    assert sorted(cal_x[:, 0].tolist()) == sorted(x[10:, 0].tolist())

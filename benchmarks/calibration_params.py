"""Which digital parameters calibration re-fits by default: the test accuracy of PCM chips
read a day and a year after programming, uncalibrated and calibrated with each choice of
`calibration.params` (and with gradient steps), on a digits MLP and a digits ResNet-20 (with
BatchNorm). Chips 0..K-1 of the Monte Carlo run of seed 0 (the chips `compare` evaluates),
256 calibration examples of the training split; mean and standard deviation over the chips.
Then the MLP under an analog forward (6-bit DAC and ADC, output noise 0.02, calibrated input
ranges and per-column ADC ranges): gain and bias with and without `input_range`.

    OMP_NUM_THREADS=1 python benchmarks/calibration_params.py [--chips 10] [--models 'mlp [64]']
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

import torch

from noiseproof.analog import AnalogForward, analog_forward
from noiseproof.analog_ranges import evaluation_forward
from noiseproof.calibration.chips import calibrated_module, drawn_chip
from noiseproof.calibration.fit import ChipEffects, applied, calibrate_chip
from noiseproof.calibration.settings import CalibrationConfig
from noiseproof.calibration.split import calibration_split
from noiseproof.chip import chip_params, detached
from noiseproof.data import datasets
from noiseproof.evaluation.clean import clean_metrics
from noiseproof.noise import create_noise
from noiseproof.restore import model_from_checkpoint
from noiseproof.tasks import create_task
from noiseproof.training.checkpoints import load_checkpoint

MODELS = {
    "mlp [64]": ("{name: mlp, hidden: [64]}", 20),
    "resnet20 width 8": ("{name: resnet20, width: 8}", 10),
}
LEVELS = {"1 day": 86400.0, "1 year": 31536000.0}
CHOICES = {
    "bias": CalibrationConfig(params=["bias"]),
    "gain": CalibrationConfig(params=["gain"]),
    "gain, bias": CalibrationConfig(),
    "gain, bias, norm": CalibrationConfig(params=["gain", "bias", "norm"]),
    "gain, bias, affine": CalibrationConfig(params=["gain", "bias", "affine"]),
    "norm, affine": CalibrationConfig(params=["norm", "affine"]),
    "gain, bias + 20 steps": CalibrationConfig(steps=20),
}
TASK = create_task("classification")
FORWARD = AnalogForward(
    dac_bits=6,
    adc_bits=6,
    output_noise=0.02,
    input_range={"mode": "calibrated"},
    adc_range={"mode": "calibrated", "per": "column"},
)
UNDER_FORWARD = {
    "gain, bias": CalibrationConfig(),
    "gain, bias, input_range": CalibrationConfig(params=["gain", "bias", "input_range"]),
}


def train(model: str, epochs: int, out: Path) -> Path:
    """A checkpoint trained by `noiseproof train` (standard, seed 0) on digits."""
    command = [sys.executable, "-m", "noiseproof", "train", "--dataset", "digits"]
    command += ["--set", f"model={model}", "--method", "standard", "--seed", "0"]
    command += ["--epochs", str(epochs), "--no-progress", "--out", str(out), "-q"]
    subprocess.run(command, check=True)
    return out


def shown(values: list[float]) -> str:
    return f"{100 * statistics.mean(values):5.1f} ± {100 * statistics.stdev(values):4.1f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--chips", type=int, default=10)
    parser.add_argument("--models", default=",".join(MODELS), help="comma-separated")
    args = parser.parse_args()
    data = datasets.create("digits").load()
    x, y = calibration_split(data, 256, seed=0)
    test = (data.x_test, data.y_test, TASK)
    with tempfile.TemporaryDirectory() as folder:
        for label in args.models.split(","):
            spec, epochs = MODELS[label]
            state, meta = load_checkpoint(train(spec, epochs, Path(folder) / "model.pt"))
            model = model_from_checkpoint(state, meta)
            clean = detached(chip_params(model))
            accuracy = clean_metrics(model, *test)["accuracy"]
            print(f"{label}: clean test accuracy {100 * accuracy:.1f} %")
            header = "  " + " " * 24 + "".join(f"{name:>16s}" for name in LEVELS)
            print(header)
            rows: dict[str, list[str]] = {"uncalibrated": []}
            rows.update({name: [] for name in CHOICES})
            for level in LEVELS.values():
                noise = create_noise({"name": "pcm", "t_inference": level})
                got: dict[str, list[float]] = {name: [] for name in rows}
                for k in range(args.chips):
                    chip = drawn_chip(noise, clean, 0, "pcm", k)
                    got["uncalibrated"].append(clean_metrics(model, *test, params=chip)["accuracy"])
                    for name, settings in CHOICES.items():
                        fitted = calibrate_chip(model, clean, chip, x, y, settings, TASK)
                        module = calibrated_module(model, chip, fitted)
                        got[name].append(clean_metrics(module, *test)["accuracy"])
                for name, values in got.items():
                    rows[name].append(shown(values))
            for name, cells in rows.items():
                print(f"  {name:24s}" + "".join(f"{c:>16s}" for c in cells))
            if label.startswith("mlp"):
                forward_table(model, clean, data, x, y, args.chips)


def forward_table(model, clean, data, x, y, chips: int) -> None:
    """The MLP's rows under FORWARD: each chip tested with output noise from its own seed."""
    effects = evaluation_forward(FORWARD, model, list(clean), data.example(512))
    test = (data.x_test, data.y_test, TASK)
    print("  under the analog forward (6-bit DAC/ADC, calibrated ranges, output noise 0.02):")
    rows: dict[str, list[str]] = {"uncalibrated": [], **{name: [] for name in UNDER_FORWARD}}
    for level in LEVELS.values():
        noise = create_noise({"name": "pcm", "t_inference": level})
        got: dict[str, list[float]] = {name: [] for name in rows}
        for k in range(chips):
            chip = drawn_chip(noise, clean, 0, "pcm", k)

            def tested(k: int = k) -> ChipEffects:
                return ChipEffects(effects, torch.Generator().manual_seed(1000 + k))

            with analog_forward(model, list(clean), effects, tested().generator):
                got["uncalibrated"].append(clean_metrics(model, *test, params=chip)["accuracy"])
            for name, settings in UNDER_FORWARD.items():
                fit = ChipEffects(effects, torch.Generator().manual_seed(k))
                fitted = calibrate_chip(model, clean, chip, x, y, settings, TASK, fit)
                with applied(model, list(clean), fitted, tested()):
                    params = {**fitted.state, **chip}
                    got[name].append(clean_metrics(model, *test, params=params)["accuracy"])
        for name, values in got.items():
            rows[name].append(shown(values))
    for name, cells in rows.items():
        print(f"  {name:24s}" + "".join(f"{c:>16s}" for c in cells))


if __name__ == "__main__":
    main()

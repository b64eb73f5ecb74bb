"""Cost of calibrating one chip relative to one clean forward pass of its calibration split.

Goal: per-chip calibration (noiseproof.calibration.fit.calibrate_chip with the default
settings: gain and bias, no gradient steps) <= 30 clean forward passes of the calibration
split (256 examples). The chip's draw is not counted (an uncalibrated evaluation draws it
too). Both are timed interleaved in this one run (best of --repeats, transfers.best_times), so
the ratio does not depend on how busy the machine is. Models: the digits MLP, the Buechel CNN
and ResNet-20 (21 MVM layers, 19 BatchNorms); rows with the norms too and with 5 gradient
steps show what the options cost (input_range needs an analog forward: not timed here).

    OMP_NUM_THREADS=1 python benchmarks/calibration.py [--repeats 5] [--device cpu]
"""

from __future__ import annotations

import argparse

import torch
from transfers import best_times  # the sibling benchmark's interleaved best-of timing

from noiseproof.calibration.fit import calibrate_chip
from noiseproof.calibration.settings import CalibrationConfig
from noiseproof.chip import chip_params, detached, forward
from noiseproof.models import build_model
from noiseproof.noise import create_noise
from noiseproof.tasks import create_task

TASK = create_task("classification")
NOISE = create_noise({"name": "pcm", "t_inference": 86400.0})
MODELS = {
    "mlp 64-64-10 (digits)": ({"name": "mlp", "hidden": [64]}, (1, 8, 8)),
    "cnn (Buechel, 28x28)": ({"name": "cnn"}, (1, 28, 28)),
    "resnet20 (32x32)": ({"name": "resnet20"}, (3, 32, 32)),
}
SETTINGS = {
    "default (gain, bias)": CalibrationConfig(),
    "gain, bias, norm, affine": CalibrationConfig(params=["gain", "bias", "norm", "affine"]),
    "default + 5 steps": CalibrationConfig(steps=5),
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--examples", type=int, default=256)
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()
    device = torch.device(args.device)
    print(f"calibration of one chip / one clean forward of {args.examples} examples ({device})")
    for label, (spec, shape) in MODELS.items():
        torch.manual_seed(0)
        model = build_model(spec, shape, 10).to(device).eval()
        gen = torch.Generator(device=device).manual_seed(0)
        x = torch.randn(args.examples, *shape, generator=gen, device=device)
        y = torch.randint(0, 10, (args.examples,), generator=gen, device=device)
        clean = detached(chip_params(model))
        chip = NOISE.sample(clean, torch.Generator(device=device).manual_seed(1))

        @torch.no_grad()
        def clean_pass(model=model, clean=clean, x=x) -> None:
            forward(model, clean, x)

        fns = [clean_pass] + [
            lambda s=s, model=model, clean=clean, chip=chip, x=x, y=y: calibrate_chip(
                model, clean, chip, x, y, s, TASK
            )
            for s in SETTINGS.values()
        ]
        for fn in fns:  # warm-up
            fn()
        times = best_times(fns, args.repeats)
        print(f"  {label}: clean forward {1e3 * times[0]:.2f} ms")
        for name, seconds in zip(SETTINGS, times[1:], strict=True):
            ratio = seconds / times[0]
            goal = "  (goal <= 30)" if name == "default (gain, bias)" else ""
            print(f"    {name:26s} {1e3 * seconds:8.2f} ms  ratio {ratio:5.1f}{goal}")


if __name__ == "__main__":
    main()

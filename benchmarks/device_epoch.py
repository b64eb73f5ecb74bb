"""ResNet-20 on CIFAR-shaped data: one training epoch and 1,000 Monte Carlo transfers, per device.

Prints seconds per device and the CPU/device ratio. Random data of CIFAR-10's shape (50k train
32x32x3 images by default) so no files are needed; the timing does not depend on the values.

    OMP_NUM_THREADS=1 python benchmarks/device_epoch.py --train 5000 --test 500 --devices cpu
    python benchmarks/device_epoch.py            # every device present, full sizes
"""

from __future__ import annotations

import argparse
import time

import torch

from noiseproof.data.base import Dataset
from noiseproof.devices import resolve_device
from noiseproof.evaluation.transfers import run_transfers
from noiseproof.methods import methods
from noiseproof.models import models
from noiseproof.noise import noise_models
from noiseproof.seeding import generator
from noiseproof.training.config import TrainConfig
from noiseproof.training.trainer import train


def synchronise(device: torch.device) -> None:
    """Wait for queued kernels, so a wall-clock reading covers the work."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def cifar_shaped(n_train: int, n_test: int) -> Dataset:
    """Random 3x32x32 images in 10 classes (seeded)."""
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(n_train + n_test, 3, 32, 32, generator=gen)
    y = torch.randint(0, 10, (n_train + n_test,), generator=gen)
    return Dataset(
        "cifar-shaped", x[:n_train], y[:n_train], x[:0], y[:0], x[n_train:], y[n_train:], 10
    )


def measure(device: torch.device, data: Dataset, transfers: int, precision: str) -> tuple:
    """(seconds of one training epoch, seconds of `transfers` transfers) on `device`."""
    torch.manual_seed(0)
    model = models.create("resnet20").create(data.input_shape, data.num_outputs)
    config = TrainConfig(epochs=1, batch_size=128, precision=precision)
    data = data.to(device)
    started = time.perf_counter()
    train(model, data, methods.create("standard"), config, seed=0, progress=False, device=device)
    synchronise(device)
    epoch = time.perf_counter() - started
    noise = noise_models.create({"name": "relative_gaussian", "zeta": 0.1})
    started = time.perf_counter()
    run_transfers(
        model, noise, data.x_test, data.y_test, transfers, generator(0, "t", device=device)
    )
    synchronise(device)
    return epoch, time.perf_counter() - started


def main() -> None:
    """Parse the options, time each device, print one line per device and the ratios."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--train", type=int, default=50_000, help="training images")
    parser.add_argument("--test", type=int, default=500, help="test images per transfer")
    parser.add_argument("--transfers", type=int, default=1000)
    parser.add_argument("--devices", default="cpu,auto", help="comma list, e.g. cpu,cuda")
    parser.add_argument("--precision", default="fp32", help="train.precision: fp32, bf16, fp16")
    args = parser.parse_args()
    data = cifar_shaped(args.train, args.test)
    devices = list(dict.fromkeys(resolve_device(d) for d in args.devices.split(",")))
    results = {}
    for device in devices:
        epoch, chips = measure(device, data, args.transfers, args.precision)
        results[device] = (epoch, chips)
        print(
            f"{str(device):8s} resnet20 epoch ({args.train} images, {args.precision}): "
            f"{epoch:8.1f} s   {args.transfers} transfers x {args.test} images: {chips:8.1f} s",
            flush=True,
        )
    cpu = results.get(torch.device("cpu"))
    for device, (epoch, chips) in results.items():
        if cpu is not None and device.type != "cpu":
            print(
                f"speed-up {device} vs cpu: epoch {cpu[0] / epoch:.1f}x, "
                f"transfers {cpu[1] / chips:.1f}x"
            )


if __name__ == "__main__":
    main()

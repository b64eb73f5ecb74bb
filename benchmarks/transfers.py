"""Cost of Monte Carlo transfers relative to their floor: K noisy passes / K clean passes.

The floor is K clean forward passes over the same test set; run_transfers adds one noise draw
per transfer and the functional_call indirection. Both are timed in this one run, so the
printed ratio does not depend on how busy the machine is between runs.

    python benchmarks/transfers.py [--transfers 20] [--n-mlp 10000] [--n-resnet 2000]
"""

from __future__ import annotations

import argparse
import time

import torch

from noiseproof.evaluation.clean import predictions
from noiseproof.evaluation.transfers import run_transfers
from noiseproof.models import build_model
from noiseproof.noise import create_noise


def best_times(fns, repeats: int = 3) -> list[float]:
    """Best wall time of each function over `repeats` rounds, the functions interleaved so that
    load from other processes hits them alike."""
    best = [float("inf")] * len(fns)
    for _ in range(repeats):
        for i, fn in enumerate(fns):
            start = time.perf_counter()
            fn()
            best[i] = min(best[i], time.perf_counter() - start)
    return best


def measure(name: str, model: torch.nn.Module, x: torch.Tensor, k: int, batch: int) -> None:
    """Print time per transfer, time per clean pass, and their ratio for one model."""
    y = torch.zeros(len(x), dtype=torch.long)
    noise = create_noise({"name": "relative_gaussian", "zeta": 0.3})
    model.eval()
    predictions(model, x[:batch], batch)  # warm-up
    clean, noisy = best_times(
        [
            lambda: [predictions(model, x, batch) for _ in range(k)],
            lambda: run_transfers(
                model, noise, x, y, k, torch.Generator().manual_seed(0), batch_size=batch
            ),
        ]
    )
    print(
        f"{name:10s} N={len(x):6d} K={k:4d}  transfer {1e3 * noisy / k:8.1f} ms  "
        f"clean pass {1e3 * clean / k:8.1f} ms  ratio {noisy / clean:5.2f}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--transfers", type=int, default=20)
    parser.add_argument("--n-mlp", type=int, default=10000)
    parser.add_argument("--n-resnet", type=int, default=2000)
    args = parser.parse_args()
    gen = torch.Generator().manual_seed(0)
    torch.manual_seed(0)
    mlp = build_model({"name": "mlp", "hidden": [256, 256]}, (1, 28, 28), 10)
    measure("mlp", mlp, torch.rand(args.n_mlp, 1, 28, 28, generator=gen), args.transfers, 2000)
    resnet = build_model("resnet20", (3, 32, 32), 10)
    x = torch.rand(args.n_resnet, 3, 32, 32, generator=gen)
    measure("resnet20", resnet, x, max(args.transfers // 4, 2), 500)


if __name__ == "__main__":
    main()

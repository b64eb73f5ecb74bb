"""Time per training step of `adversarial` (n_steps 1, 3, 10) and `awp`, divided by `standard`'s.

Buechel et al. 2022's CNN on Fashion-MNIST-shaped inputs, batch 100, Adam; one step = the
method's terms + backward + optimiser step, exactly what the trainer does. Methods are run
round-robin (each round times every method on the same batch) and each ratio is the median
over rounds of (method time / standard time in that round), so a noisy shared machine hits
all methods alike. The floor for the attack is n_steps + 1 forward/backward passes (the
attack's n_steps plus the training pass); our implementation does n_steps + 2 (the clean pass
and the pass at theta*), so ratios are printed next to both.

    python benchmarks/adversarial_cost.py [--rounds 5]
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from noiseproof.chip import chip_params
from noiseproof.methods import create_method
from noiseproof.methods.base import StepContext
from noiseproof.models import build_model
from noiseproof.tasks import create_task

METHODS = {
    "standard": "standard",
    "adversarial n_steps=1": {"name": "adversarial", "n_steps": 1},
    "adversarial n_steps=3": {"name": "adversarial", "n_steps": 3},
    "adversarial n_steps=10": {"name": "adversarial", "n_steps": 10},
    "awp (1 step)": {"name": "awp"},
}
FLOOR = {
    "adversarial n_steps=1": 2,
    "adversarial n_steps=3": 4,
    "adversarial n_steps=10": 11,
    "awp (1 step)": 2,
}


def step_timer(method_spec, channels_last: bool, batch: int):
    """A closure running one full training step; returns its wall time in seconds."""
    torch.manual_seed(0)
    model = build_model("cnn", (1, 28, 28), 10)
    gen = torch.Generator().manual_seed(0)
    x = torch.rand(batch, 1, 28, 28, generator=gen)
    y = torch.randint(0, 10, (batch,), generator=gen)
    if channels_last:
        model = model.to(memory_format=torch.channels_last)
        x = x.contiguous(memory_format=torch.channels_last)
    return timed_step(model, x, y, method_spec, None)


def timed_step(model, x, y, method_spec, noise, task=None):
    """A closure running one full training step of `method_spec` on (x, y) for `task` (default:
    classification; Adam 1e-3, the method's terms summed, as the trainer does); returns its
    wall time in seconds."""
    model.train()
    gen = torch.Generator().manual_seed(1)
    ctx = StepContext(
        model, chip_params(model), noise, gen, task=create_task(task or "classification")
    )
    method = create_method(method_spec)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)

    def run() -> float:
        started = time.perf_counter()
        loss = torch.stack(list(method.terms(ctx, x, y).values())).sum()
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        return time.perf_counter() - started

    return run


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--steps", type=int, default=2, help="timed steps per method per round")
    parser.add_argument("--batch", type=int, default=100)
    args = parser.parse_args()
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, batch {args.batch}")
    for channels_last in (False, True):
        timers = {
            name: step_timer(spec, channels_last, args.batch) for name, spec in METHODS.items()
        }
        for timer in timers.values():  # warm-up
            timer()
        times: dict[str, list[float]] = {name: [] for name in METHODS}
        for _ in range(args.rounds):
            for name, timer in timers.items():
                times[name].append(min(timer() for _ in range(args.steps)))
        layout = "channels_last" if channels_last else "contiguous (NCHW)"
        print(f"\nlayout: {layout}")
        print(f"{'method':<24}{'s/step (median)':>16}{'ratio':>8}{'floor n+1':>11}{'ours n+2':>10}")
        for name in METHODS:
            ratios = [t / s for t, s in zip(times[name], times["standard"], strict=True)]
            floor = FLOOR.get(name, 1)
            ours = floor + 1 if name.startswith("adversarial") else floor
            print(
                f"{name:<24}{statistics.median(times[name]):>16.4f}"
                f"{statistics.median(ratios):>8.2f}{floor:>11}{ours:>10}"
            )
    print("\nratio = median over rounds of (method step time / standard step time, same round)")


if __name__ == "__main__":
    main()

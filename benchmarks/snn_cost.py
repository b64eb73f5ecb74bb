"""Cost of the LSNN (Buechel et al. 2022's spiking model): training step and Monte Carlo transfers.

1. Training step: `adversarial` (beta 0.25, 10 attack steps), the combination (beta 0.1 +
   forward noise 0.3) and `noise_injection` (0.3), each divided by `standard`'s step on the same
   batch. One step = the method's terms + backward + Adam step, exactly what the trainer does
   (BPTT through every time step). Methods run round-robin and each ratio is the median over
   rounds of (method time / standard time in that round), so load from other processes hits
   them alike. The attack's floor is n_steps + 1 forward/backward passes; ours does n_steps + 2
   (the clean pass and the pass at theta*); the combination one more (the noisy task pass).
2. Transfers: K simulated chips (relative Gaussian zeta 0.3) over a test set, divided by its
   floor, K clean passes over the same test set (`clean_metrics`); once with the weights on the
   chip (the default selection), once with the neuron parameters too (tau_mem, tau_adapt,
   threshold, adaptation). Interleaved, best of --repeats rounds.

Cases: `example` is examples/buechel2022-snn/ (digits as 8 steps x 8 features, 128 neurons,
test set 359); `paper` has the paper's ECG shape (100 steps x 2 channels, 256 neurons, random
inputs; 4 classes, test set 500).

    OMP_NUM_THREADS=1 python benchmarks/snn_cost.py [--rounds 3] [--only example,paper]
"""

from __future__ import annotations

import argparse
import statistics

import torch
from adversarial_cost import timed_step  # the sibling benchmark's one-step timer
from transfers import best_times  # the sibling benchmark's interleaved best-of timing

from noiseproof.chip import ChipSelection
from noiseproof.evaluation.clean import clean_metrics
from noiseproof.evaluation.transfers import run_transfers
from noiseproof.models import build_model
from noiseproof.noise import create_noise
from noiseproof.tasks import create_task

LSNN = {"name": "lsnn", "tau_mem": 10, "tau_out": 10, "tau_adapt": 50}
CASES = {
    # name: (model spec, input shape [T, F], classes, training batch, test examples, chips K)
    "example": ({**LSNN, "hidden": 128}, (8, 8), 10, 100, 359, 100),
    "paper": ({"name": "lsnn", "hidden": 256}, (100, 2), 4, 100, 500, 10),
}
METHODS = {
    "standard": "standard",
    "noise_injection 0.3": {"name": "noise_injection", "level": 0.3},
    "adversarial beta 0.25": {"name": "adversarial", "beta_rob": 0.25},
    "fwd noise 0.3 + adv 0.1": {"name": "adversarial", "beta_rob": 0.1, "noisy_forward_std": 0.3},
}
# forward/backward passes per step (n_steps = 10): the floor and ours. Adversarial: the n attack
# passes + the training pass (floor); ours evaluates f(theta*) once more after the last attack
# step. The combination adds the noisy task pass (the clean pass stays: the KL's target).
PASSES = {"adversarial beta 0.25": (11, 12), "fwd noise 0.3 + adv 0.1": (12, 13)}
NOISE = create_noise({"name": "relative_gaussian", "zeta": 0.3})
NEURONS = ChipSelection(include=("*.tau_mem", "*.tau_adapt", "*.threshold", "*.adaptation"))


def step_timer(spec, shape, classes: int, batch: int, method_spec):
    """A closure running one full training step; returns its wall time in seconds."""
    torch.manual_seed(0)
    model = build_model(spec, shape, classes)
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(batch, *shape, generator=gen)
    y = torch.randint(0, classes, (batch,), generator=gen)
    return timed_step(model, x, y, method_spec, NOISE)


def training(name: str, rounds: int) -> None:
    """Print s/step and the ratio to standard of every method."""
    spec, shape, classes, batch, _, _ = CASES[name]
    timers = {m: step_timer(spec, shape, classes, batch, s) for m, s in METHODS.items()}
    for timer in timers.values():  # warm-up
        timer()
    times: dict[str, list[float]] = {m: [] for m in METHODS}
    for _ in range(rounds):
        for m, timer in timers.items():
            times[m].append(timer())
    print(f"\n[{name}] training step, LSNN {spec['hidden']} neurons, input {shape}, batch {batch}")
    print(f"{'method':<26}{'s/step (median)':>16}{'ratio':>8}{'passes: floor':>15}{'ours':>6}")
    for m in METHODS:
        ratios = [t / s for t, s in zip(times[m], times["standard"], strict=True)]
        floor, ours = PASSES.get(m, (1, 1))
        passes = f"{floor:>15}{ours:>6}"
        print(
            f"{m:<26}{statistics.median(times[m]):>16.4f}{statistics.median(ratios):>8.2f}{passes}"
        )


def transfers(name: str, repeats: int) -> None:
    """Print ms per transfer, ms per clean pass and their ratio, weights-only and with neurons."""
    spec, shape, classes, _, n, k = CASES[name]
    torch.manual_seed(0)
    model = build_model(spec, shape, classes).eval()
    gen = torch.Generator().manual_seed(2)
    x = torch.randn(n, *shape, generator=gen)
    y = torch.randint(0, classes, (n,), generator=gen)
    task = create_task("classification")
    clean_metrics(model, x[:10], y[:10], task, n)  # warm-up

    def chips(selection):
        return lambda: run_transfers(
            model, NOISE, x, y, k, torch.Generator().manual_seed(0), selection=selection
        )

    fns = [
        lambda: [clean_metrics(model, x, y, task, n) for _ in range(k)],
        chips(None),
        chips(NEURONS),
    ]
    clean, weights, neurons = best_times(fns, repeats)
    print(f"\n[{name}] transfers, relative Gaussian 0.3, N={n} test examples, K={k} chips")
    print(f"  clean pass (floor)          {1e3 * clean / k:9.2f} ms per pass")
    print(
        f"  chip: weights               {1e3 * weights / k:9.2f} ms per chip   "
        f"ratio {weights / clean:5.2f}"
    )
    print(
        f"  chip: weights + neurons     {1e3 * neurons / k:9.2f} ms per chip   "
        f"ratio {neurons / clean:5.2f}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3, help="interleaved rounds")
    parser.add_argument("--only", default=",".join(CASES), help="comma-separated cases")
    args = parser.parse_args()
    print(f"torch {torch.__version__}, {torch.get_num_threads()} thread(s)")
    for name in args.only.split(","):
        training(name, args.rounds)
        transfers(name, args.rounds)
    print(
        "\nratio (training) = median over rounds of (method step / standard step, same round);"
        "\nratio (transfers) = best of rounds of K chips / best of K clean passes"
    )


if __name__ == "__main__":
    main()

"""Cost of language-model work relative to its floor, on a gpt the size of the analog-lm example.

1. Monte Carlo: K noisy chips (run_transfers under relative Gaussian mismatch) over a test set of
   token windows, divided by K clean passes over the same tokens measured the same way
   (`clean_metrics`: a forward and the task's sums); goal <= 1.1x. Timed interleaved in one run
   (best of --repeats), so the ratio does not depend on how busy the machine is.
2. Memory flat in K: each K runs in a fresh process that prints its peak resident memory.
3. Training step: noise_injection and adversarial (n_steps 1 and 3) per step, divided by
   standard's (round-robin, median over rounds of the same-round ratio); goals <= 1.3x and
   <= (n + 1.2)x.

    OMP_NUM_THREADS=1 python benchmarks/lm_cost.py [--repeats 3] [--rounds 5]
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import subprocess
import sys

import torch
from adversarial_cost import timed_step  # the sibling benchmarks' one-step timer
from transfers import best_times  # and interleaved best-of timing

from noiseproof.evaluation.clean import clean_metrics
from noiseproof.evaluation.transfers import run_transfers
from noiseproof.models import build_model
from noiseproof.noise import create_noise
from noiseproof.tasks import create_task

GPT = {"name": "gpt", "n_layer": 4, "n_head": 4, "n_embd": 128, "block_size": 64}
"""The example's model size (about 0.8M parameters, plus embeddings)."""
VOCAB = 96
NOISE = create_noise({"name": "relative_gaussian", "zeta": 0.1})
TASK = create_task("language_model")


def setup(windows: int) -> tuple[torch.nn.Module, torch.Tensor, torch.Tensor]:
    """The model (eval mode) and `windows` next-token windows of a random token stream."""
    torch.manual_seed(0)
    model = build_model(GPT, (GPT["block_size"],), VOCAB).eval()
    gen = torch.Generator().manual_seed(1)
    stream = torch.randint(0, VOCAB, (windows * GPT["block_size"] + 1,), generator=gen)
    x = stream[:-1].reshape(windows, -1)
    return model, x, stream[1:].reshape(windows, -1)


def monte_carlo(k: int, windows: int, batch: int, repeats: int) -> None:
    """Print ms per chip, ms per clean pass and their ratio."""
    model, x, y = setup(windows)
    clean_metrics(model, x[:batch], y[:batch], TASK, batch)  # warm-up
    fns = [
        lambda: [clean_metrics(model, x, y, TASK, batch) for _ in range(k)],
        lambda: run_transfers(
            model, NOISE, x, y, k, torch.Generator().manual_seed(0), batch_size=batch, task=TASK
        ),
    ]
    clean, chips = best_times(fns, repeats)
    print(
        f"Monte Carlo, {k} chips x {windows} windows of {GPT['block_size']} tokens: "
        f"{1000 * chips / k:.1f} ms/chip, {1000 * clean / k:.1f} ms/clean pass, "
        f"ratio {chips / clean:.3f} (goal <= 1.1)"
    )


def peak_memory(k: int, windows: int, batch: int) -> float:
    """Peak resident memory (MiB) of a fresh process running K chips."""
    code = (
        "import sys, resource, torch; sys.path.insert(0, 'benchmarks'); import lm_cost as b; "
        f"m, x, y = b.setup({windows}); "
        f"b.run_transfers(m, b.NOISE, x, y, {k}, torch.Generator().manual_seed(0), "
        f"batch_size={batch}, task=b.TASK); "
        "print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return int(out.stdout.strip().splitlines()[-1]) / 1024


def training(rounds: int, batch: int) -> None:
    """Print each method's median step-time ratio to standard's."""
    methods = {
        "standard": "standard",
        "noise_injection": "noise_injection",
        "adversarial n_steps=1": {"name": "adversarial", "n_steps": 1},
        "adversarial n_steps=3": {"name": "adversarial", "n_steps": 3},
    }
    goals = {"noise_injection": 1.3, "adversarial n_steps=1": 2.2, "adversarial n_steps=3": 4.2}
    timers = {}
    for name, spec in methods.items():
        model, x, y = setup(batch)
        timers[name] = timed_step(model, x, y, spec, NOISE, TASK)
    for timer in timers.values():
        timer()  # warm-up
    times: dict[str, list[float]] = {name: [] for name in methods}
    for _ in range(rounds):
        for name, timer in timers.items():
            times[name].append(min(timer() for _ in range(2)))
    print(f"\ntraining step, batch {batch} windows of {GPT['block_size']} tokens:")
    for name in methods:
        ratios = [t / s for t, s in zip(times[name], times["standard"], strict=True)]
        goal = f" (goal <= {goals[name]})" if name in goals else ""
        print(
            f"  {name:<24}{1000 * statistics.median(times[name]):8.1f} ms/step  "
            f"ratio {statistics.median(ratios):.2f}{goal}"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--windows", type=int, default=64, help="test windows per chip")
    parser.add_argument("--batch", type=int, default=32)
    args = parser.parse_args()
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, model {json.dumps(GPT)}")
    monte_carlo(16, args.windows, args.batch, args.repeats)
    base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    memory = {k: peak_memory(k, args.windows, args.batch) for k in (4, 64)}
    print(
        f"peak memory of a fresh process: K=4 {memory[4]:.0f} MiB, K=64 {memory[64]:.0f} MiB "
        f"(ratio {memory[64] / memory[4]:.3f}; this process {base:.0f} MiB)"
    )
    training(args.rounds, args.batch)


if __name__ == "__main__":
    main()

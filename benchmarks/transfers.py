"""Cost of Monte Carlo transfers relative to their floor: K noisy passes / K clean passes.

The floor is K clean forward passes over the same test set, each measured by the task as a
chip is (`clean_metrics`). run_transfers adds
the noise draws and, where the vmapped forward pays, beats the floor (one forward for a chunk
of chips). Both are timed interleaved in this one run (best of --repeats), so the printed
ratios do not depend on how busy the machine is between runs. Also printed: the moons time of
the loop run_transfers used before chip-indexed draws (one `noise.sample` per chip from one
generator, then one measured pass), and the memory of K=1,000 vs 10,000 chips on the digits MLP.

    OMP_NUM_THREADS=1 python benchmarks/transfers.py [--repeats 3] [--scale 1.0]
"""

from __future__ import annotations

import argparse
import resource
import time
import weakref

import torch
from torch.utils._python_dispatch import TorchDispatchMode

from noiseproof.chip import chip_params, detached
from noiseproof.evaluation.chipstream import ChipStream
from noiseproof.evaluation.clean import clean_metrics
from noiseproof.evaluation.transfers import run_transfers
from noiseproof.evaluation.vectorised import census, pays, vmap_agrees
from noiseproof.models import build_model
from noiseproof.modes import evaluating
from noiseproof.noise import create_noise
from noiseproof.tasks import create_task

NOISE = create_noise({"name": "relative_gaussian", "zeta": 0.3})
TASK = create_task("classification")
DEVICE = torch.device("cpu")  # --device


def best_times(fns, repeats: int) -> list[float]:
    """Best wall time of each function over `repeats` rounds, the functions interleaved so that
    load from other processes hits them alike."""
    best = [float("inf")] * len(fns)
    for _ in range(repeats):
        for i, fn in enumerate(fns):
            sync()
            start = time.perf_counter()
            fn()
            sync()
            best[i] = min(best[i], time.perf_counter() - start)
    return best


def sync() -> None:
    """Wait for queued GPU work (timings of CUDA runs), a no-op on the CPU."""
    if DEVICE.type == "cuda":
        torch.cuda.synchronize(DEVICE)


def old_loop(model, x, y, k: int, batch: int) -> None:
    """run_transfers before chip-indexed draws: one sample per chip from one generator."""
    clean = detached(chip_params(model))
    gen = torch.Generator().manual_seed(0)
    for _ in range(k):
        clean_metrics(model, x, y, TASK, batch, params=NOISE.sample(clean, gen))


def draws(clean, k: int) -> None:
    """The noise of chips 0..k-1 alone, drawn as run_transfers draws it (for the ratio's
    share that the draws take: noise draw alone = this time / K clean passes)."""
    stream = ChipStream(NOISE, clean, 0, DEVICE)
    for i in range(0, k, stream.block):
        stream.chips(i, min(i + stream.block, k))


def path(model, x) -> str:
    """Which path run_transfers takes for this model and test set, and its block size."""
    clean = detached(chip_params(model))
    with torch.no_grad(), evaluating(model):
        vmap = pays(census(model, clean, x), len(x), DEVICE)
        vmap = vmap and vmap_agrees(model, clean, x)
    block = ChipStream(NOISE, clean, 0, DEVICE).block
    return f"{'vmap' if vmap else 'loop'} (block {block})"


def measure(name, model, x, k, batch, repeats, with_old=False) -> float:
    """Print ms per transfer, ms per clean pass and their ratio; return the ratio."""
    y = torch.randint(0, 2, (len(x),), generator=torch.Generator().manual_seed(1)).to(DEVICE)
    model.eval()
    clean_metrics(model, x[:batch], y[:batch], TASK, batch)  # warm-up
    fns = [
        lambda: [clean_metrics(model, x, y, TASK, batch) for _ in range(k)],
        lambda: run_transfers(
            model, NOISE, x, y, k, torch.Generator().manual_seed(0), batch_size=batch
        ),
    ]
    clean_params = detached(chip_params(model))
    fns.append(lambda: draws(clean_params, k))
    if with_old:
        fns.append(lambda: old_loop(model, x, y, k, batch))
    times = best_times(fns, repeats)
    clean, noisy, drawing = times[:3]
    print(
        f"{name:16s} N={len(x):6d} K={k:5d}x{repeats}  transfer {1e3 * noisy / k:9.3f} ms  "
        f"clean pass {1e3 * clean / k:9.3f} ms  ratio {noisy / clean:5.2f}  "
        f"(noise draw alone {drawing / clean:.2f})  {path(model, x)}"
    )
    if with_old:
        print(
            f"{'':16s} previous loop {1e3 * times[3] / k:9.3f} ms per transfer: now "
            f"{times[3] / noisy:.1f}x faster"
        )
    return noisy / clean


class PeakTensorBytes(TorchDispatchMode):
    """Peak bytes of live tensors made by torch ops while active (each storage counted once)."""

    def __init__(self) -> None:
        super().__init__()
        self.live = self.peak = 0
        self.seen: set[int] = set()

    def _free(self, key: int, size: int) -> None:
        self.seen.discard(key)
        self.live -= size

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        for t in out if isinstance(out, tuple | list) else (out,):
            if isinstance(t, torch.Tensor):
                key = t.untyped_storage().data_ptr()
                if key not in self.seen:
                    size = t.untyped_storage().nbytes()
                    self.seen.add(key)
                    self.live += size
                    self.peak = max(self.peak, self.live)
                    weakref.finalize(t, self._free, key, size)
        return out


def memory(model, x) -> None:
    """Peak tensor bytes and RSS growth of K=1,000 and 10,000 chips on the same model."""
    y = torch.zeros(len(x), dtype=torch.long)
    with PeakTensorBytes():  # one-time costs (imports, allocator pools) before measuring
        run_transfers(model, NOISE, x, y, 10, torch.Generator().manual_seed(0))
    for k in (1000, 10_000):
        rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        with PeakTensorBytes() as tracker:
            run_transfers(model, NOISE, x, y, k, torch.Generator().manual_seed(0))
        grown = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - rss
        print(
            f"digits mlp       K={k:6d}  peak live tensors {tracker.peak / 2**20:7.2f} MiB  "
            f"peak RSS grew {grown / 1024:6.1f} MiB"
        )


CASES = {
    # name: (label, model spec, input shape, outputs, N, K, batch, extra repeats)
    "moons": (
        "moons 2-8-1",
        {"name": "mlp", "hidden": [8], "activation": "sigmoid"},
        (2,),
        1,
        200,
        1000,
        2000,
        4,
    ),
    "digits": ("digits mlp", "mlp", (1, 8, 8), 10, 359, 1000, 2000, 2),
    "mnist": ("mnist mlp", "mlp", (1, 28, 28), 10, 10_000, 20, 2000, 2),
    "cnn": ("fashion cnn", "cnn", (1, 28, 28), 10, 2000, 1, 500, 4),
    "resnet20": ("resnet20", "resnet20", (3, 32, 32), 10, 500, 2, 500, 3),
}
GOALS = {"moons": 1.0, "digits": 1.2, "mnist": 1.05, "cnn": 1.05, "resnet20": 1.05}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3, help="rounds (large models: more)")
    parser.add_argument("--scale", type=float, default=1.0, help="multiplies every K")
    parser.add_argument("--only", default=",".join(CASES), help="comma-separated cases")
    parser.add_argument("--device", default="cpu", help="cpu, cuda, cuda:N or mps")
    args = parser.parse_args()
    global DEVICE
    DEVICE = torch.device(args.device)
    gen = torch.Generator().manual_seed(0)
    torch.manual_seed(0)
    print(
        f"torch {torch.__version__}, {torch.get_num_threads()} thread(s), {DEVICE}; relative "
        f"Gaussian zeta 0.3; K=1000 for moons and digits; K=20, 1, 2 for the MNIST MLP, "
        f"CNN and ResNet-20 (a pass costs 0.05-1.3 s on one core), in more rounds; "
        f"KxR: best of R interleaved rounds of K; per-call costs (input checks, probes: "
        f"~25 ms on 10k MNIST inputs) included"
    )
    ratios = {}
    for name in args.only.split(","):
        label, spec, shape, outputs, n, k, batch, extra = CASES[name]
        model = build_model(spec, shape, outputs).to(DEVICE)
        x = torch.rand(n, *shape, generator=gen) if name != "moons" else torch.randn(n, 2)
        x = x.to(DEVICE)
        k = max(1, round(k * args.scale))
        repeats = args.repeats + extra
        ratios[name] = measure(label, model, x, k, batch, repeats, with_old=name == "moons")
        if name == "digits":
            memory(model, x)
    print(
        "goals (ratio to floor):",
        ", ".join(
            f"{name} {ratios[name]:.2f} {'<=' if ratios[name] <= GOALS[name] else '>'} "
            f"{GOALS[name]}"
            for name in ratios
        ),
    )


if __name__ == "__main__":
    main()

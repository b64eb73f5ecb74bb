"""IR drop in crossbar tiles (noiseproof.irdrop): accuracy of the fast solver, size of the
effect, and time against an ideal matrix-vector product.

Tiles of devices uniform in 1-25 uS, inputs uniform in 0-0.2 V (seed 0), as in
docs/device-physics.md ("IR drop"):

- accuracy: the fast solver (one effective conductance matrix M per tile, I = V M) against the
  exact nodal analysis, 64x64 and 256x256 tiles at 1, 2.5 and 5 Ohm per segment: the largest
  and the mean relative error |I_fast - I_exact| / I_exact over every output current of
  --inputs input vectors;
- effect: the ideal I = G^T V against the exact currents, mean over outputs of
  |I_ideal - I_exact| / I_exact and 1 - I_exact / I_ideal (the share of the ideal current lost);
- conventions: this circuit against three others on the same tiles: a terminal resistance of
  one segment at every driver and virtual ground (as MemTorch's source resistance), the
  drivers at the right end and the grounds at the top (a mirrored tile), and NeuroSim's
  per-cell model (each cell in series with its own wire path, cells independent);
- speed: on a 256x256 tile, the ideal product V G per input vector, the fast solver's per-input
  product V M and its per-chip setup (M of one tile; a weight tile is two, G+ and G-), a
  256 -> 256 Linear layer under `forward.ir_drop` against the plain layer, and the exact
  solver (factorisation once, then per input); with --alternatives also M by sparse LU (the
  exact solver on R unit inputs) and conjugate gradients on the device-current form of the
  network, per input and for M. Times are the best of --repeats;
- scaling (only when asked for): the fast setup of 64x64 to 512x512 tiles.

    OMP_NUM_THREADS=1 python benchmarks/ir_drop.py [--sections accuracy,effect,conventions,speed]
        [--inputs 200] [--repeats 3] [--alternatives] [--device cpu]
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch
from torch import nn

from noiseproof.analog import AnalogForward, analog_forward
from noiseproof.irdrop import NodalTile, effective_conductance

G_RANGE_US = (1.0, 25.0)
V_MAX = 0.2


def tile(rows: int, cols: int, inputs: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Conductances (uS) [rows, cols] uniform in G_RANGE_US, voltages [inputs, rows] in 0-V_MAX."""
    gen = np.random.default_rng(seed)
    return gen.uniform(*G_RANGE_US, (rows, cols)), gen.uniform(0, V_MAX, (inputs, rows))


def best(fn, repeats: int, device: torch.device) -> float:
    """Best wall time of `fn` over `repeats` calls (GPU work waited for)."""
    times = []
    for _ in range(repeats):
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        start = time.perf_counter()
        fn()
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        times.append(time.perf_counter() - start)
    return min(times)


def accuracy(inputs: int, device: torch.device) -> None:
    print("accuracy of the fast solver against the exact one (relative error per output current)")
    print(f"{'tile':>9}  {'Ohm':>4}  {'max':>9}  {'mean':>9}")
    for size in (64, 256):
        for r in (1.0, 2.5, 5.0):
            g, v = tile(size, size, inputs)
            exact = NodalTile(g, r).currents(v)
            m = effective_conductance(torch.tensor(g, device=device), r).cpu().numpy()
            err = np.abs(v @ m / exact - 1)
            print(f"{size:>4}x{size:<4}  {r:>4g}  {err.max():>9.2e}  {err.mean():>9.2e}")


def effect(inputs: int) -> None:
    print("\nsize of the effect: ideal G^T V against the exact currents (mean over outputs)")
    print(f"{'tile':>9}  {'Ohm':>4}  {'|ideal-exact|/exact':>19}  {'1 - exact/ideal':>15}")
    for size in (64, 128, 256):
        for r in (1.0, 2.5, 5.0):
            g, v = tile(size, size, inputs)
            exact, ideal = NodalTile(g, r).currents(v), v @ g
            over = np.mean(np.abs(ideal - exact) / exact)
            lost = np.mean(1 - exact / ideal)
            print(f"{size:>4}x{size:<4}  {r:>4g}  {over:>19.1%}  {lost:>15.1%}")


def conventions(inputs: int) -> None:
    print("\nother conventions against this circuit (mean |I_other / I - 1| over outputs)")
    heads = ("terminal r", "mirrored", "per-cell", "ideal")
    print(f"{'tile':>9}  {'Ohm':>4}  " + "  ".join(f"{h:>10}" for h in heads))
    for size, r in ((64, 1.0), (64, 2.5), (128, 1.0), (128, 2.5), (256, 1.0)):
        g, v = tile(size, size, inputs)
        ours = NodalTile(g, r).currents(v)
        # one more segment at every driver and every virtual ground (a terminal resistance r):
        # a column of absent devices on the left, a row of them at the bottom
        padded = np.zeros((size + 1, size + 1))
        padded[:size, 1:] = g
        drive = np.zeros((len(v), size + 1))
        drive[:, :size] = v
        terminal = NodalTile(padded, r).currents(drive)[:, 1:]
        # drivers at the right end, virtual grounds at the top
        mirrored = NodalTile(g[::-1, ::-1], r).currents(v[:, ::-1])[:, ::-1]
        # NeuroSim's: each cell in series with its own wire path, cells independent
        i, j = np.meshgrid(np.arange(size), np.arange(size), indexing="ij")
        per_cell = v @ (1e6 / (1e6 / g + (j + 1 + size - i) * r))
        cols = [
            np.mean(np.abs(other / ours - 1)) for other in (terminal, mirrored, per_cell, v @ g)
        ]
        print(f"{size:>4}x{size:<4}  {r:>4g}  " + "  ".join(f"{c:>10.2%}" for c in cols))


def device_currents_cg(g_us: torch.Tensor, v: torch.Tensor, r: float, rtol: float = 1e-8):
    """Column currents (uA) by conjugate gradients on the device-current form of the network,
    (I + s P s) z = s V, s = sqrt(r G), X = s z / r (P: the row and column wires' Green's
    functions, two cumulative sums each); v [batch, R] or the R unit inputs. Returns
    (currents [batch, C], iterations)."""
    s = (r * g_us * 1e-6).sqrt()
    rhs = s * v.unsqueeze(-1)

    def wires(x: torch.Tensor) -> torch.Tensor:
        row = (x.sum(-1, keepdim=True) - x.cumsum(-1) + x).cumsum(-1)
        col = x.cumsum(-2)
        return row + col.sum(-2, keepdim=True) - col.cumsum(-2) + col

    def apply(x: torch.Tensor) -> torch.Tensor:
        return x + s * wires(s * x)

    z = rhs.clone()
    res = rhs - apply(z)
    p, rs = res.clone(), (res * res).sum((-2, -1), keepdim=True)
    norm = (rhs * rhs).sum((-2, -1), keepdim=True).clamp_min(1e-300)
    iterations = 0
    while iterations < 1000:
        iterations += 1
        ap = apply(p)
        alpha = rs / (p * ap).sum((-2, -1), keepdim=True)
        z, res = z + alpha * p, res - alpha * ap
        new = (res * res).sum((-2, -1), keepdim=True)
        if float((new / norm).max().sqrt()) < rtol:
            break
        p, rs = res + (new / rs) * p, new
    return (s * z).sum(-2) / r * 1e6, iterations


def speed(repeats: int, alternatives: bool, device: torch.device) -> None:
    size, batch = 256, 1000
    g, v = tile(size, size, batch)
    gt = torch.tensor(g, device=device)
    vt = torch.tensor(v, device=device)
    g32, v32 = gt.float(), vt.float()
    print(f"\nspeed on a {size}x{size} tile ({device}, {torch.get_num_threads()} threads)")
    ideal = best(lambda: v32 @ g32, repeats, device) / batch
    setup = best(lambda: effective_conductance(gt, 5.0), repeats, device)
    m = effective_conductance(gt, 5.0).float()
    fast = best(lambda: v32 @ m, repeats, device) / batch
    print(
        f"ideal V G:                    {ideal * 1e6:10.2f} us per input (float32, batch {batch})"
    )
    print(
        f"fast V M:                     {fast * 1e6:10.2f} us per input "
        f"= {fast / ideal:.2f} x ideal"
    )
    print(
        f"fast setup, M of one tile:    {setup * 1e3:10.1f} ms per chip "
        f"(a weight tile is 2: {2 * setup / ideal:,.0f} ideal inputs' time)"
    )
    for n in (1_000, 10_000, 100_000):
        total = (2 * setup + 2 * n * fast) / (2 * n * ideal)
        print(f"  with the setup, over {n:>7,} inputs per chip: {total:8.2f} x ideal per input")

    torch.manual_seed(0)
    layer = nn.Linear(size, size).to(device)
    x = torch.randn(batch, size, device=device)
    timed = {}
    with torch.no_grad():
        plain = best(lambda: layer(x), repeats, device) / batch
        for r in (0.0, 5.0):
            effects = AnalogForward(ir_drop={"wire_resistance_ohm": r, "tile": f"{size}x{size}"})
            with analog_forward(layer, ["weight"], effects, torch.Generator(), G_RANGE_US):
                first = best(lambda: layer(x), 1, device)
                timed[r] = best(lambda: layer(x), repeats, device) / batch, first
    print(f"Linear {size}->{size}, plain layer: {plain * 1e6:.2f} us per input")
    for r, (later, first) in timed.items():
        print(
            f"  forward.ir_drop at {r:g} Ohm: {later * 1e6:.2f} us per input once set up "
            f"= {later / plain:.2f} x plain; first batch {first:.2f} s"
            + (
                " (the hooks: input scale, the layer's own product, the product with A_eff)"
                if r == 0
                else " (with the setup of G+ and G-)"
            )
        )

    start = time.perf_counter()
    nodal = NodalTile(g, 5.0)
    factor = time.perf_counter() - start
    some = v[:100]
    solve = best(lambda: nodal.currents(some), repeats, device) / len(some)
    print(
        f"exact: factorisation {factor:.2f} s per chip, then {solve * 1e3:.2f} ms per input "
        f"= {solve / ideal:,.0f} x ideal"
    )
    if not alternatives:
        return
    lu_m = best(lambda: nodal.currents(np.eye(size)), 1, device)
    print(f"M by sparse LU (exact solver, {size} unit inputs): {factor + lu_m:.2f} s per tile")
    vs = vt[:20]
    cg_time = best(lambda: device_currents_cg(gt, vs, 5.0), 1, device) / len(vs)
    _, iterations = device_currents_cg(gt, vs, 5.0)
    print(
        f"conjugate gradients per input: {cg_time * 1e3:.2f} ms = {cg_time / ideal:,.0f} x "
        f"ideal ({iterations} iterations to 1e-8)"
    )
    eye = torch.eye(size, dtype=gt.dtype, device=device)
    cg_m = best(lambda: device_currents_cg(gt, eye, 5.0), 1, device)
    print(f"M by conjugate gradients ({size} unit inputs): {cg_m:.2f} s per tile")


def scaling(device: torch.device) -> None:
    print("\nfast setup by tile size (M of one tile, 5 Ohm, one run each)")
    for size in (64, 128, 256, 512):
        g = torch.tensor(tile(size, size, 1)[0], device=device)
        took = best(lambda g=g: effective_conductance(g, 5.0), 1, device)
        print(f"{size:>4}x{size:<4}  {took:8.2f} s")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sections", default="accuracy,effect,conventions,speed")
    parser.add_argument("--inputs", type=int, default=200, help="input vectors per tile")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--alternatives", action="store_true", help="also time LU and CG")
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()
    device = torch.device(args.device)
    sections = args.sections.split(",")
    if "accuracy" in sections:
        accuracy(args.inputs, device)
    if "effect" in sections:
        effect(args.inputs)
    if "conventions" in sections:
        conventions(args.inputs)
    if "speed" in sections:
        speed(args.repeats, args.alternatives, device)
    if "scaling" in sections:
        scaling(device)


if __name__ == "__main__":
    main()

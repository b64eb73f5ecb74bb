"""Why stuck devices decide the Drolet 2023 share: per-device sensitivity of the trained networks,
the weight range they reach, and the share on the chips where no critical device is stuck.

    python examples/drolet2023/stuck.py RUN_DIR [--transfers 2000] [--critical 2]

RUN_DIR is an output folder of run.py (its config.yaml and checkpoints/). For every trained
network (method x seed):

1. Sensitivity. Every device of the crossbar (each device of a differential pair, or the one
   device of a one-column tensor) is set alone to the mean conductance of a stuck device
   (LRS 573 uS, HRS 55 uS), every other device at its ideal target and no other effect; the test
   points it turns from right to wrong are counted. A device is *critical* when one of its two
   stuck states turns at least `--critical` test points wrong.
2. A first-order prediction from (1): each stuck state has probability p = 0.5 % per device, so
   a point that k stuck states turn wrong is wrong on about 1 - (1 - p)^k of the chips from stuck
   devices alone; it fails the 95 % line (Drolet 2023's metric) once that exceeds 5 %, k >= 11.
3. Monte Carlo over `--transfers` chips of the run's noise model (every effect on): the share
   of test points right on >= 95 % of them, the same share over only the chips on which no
   device is stuck, and over only the chips on which no critical device is stuck (the share
   with the critical devices removed as a cause).
4. Weight range: per layer max|W|, max|W| / rms(W) and the weight error of one stuck device in
   units of rms(W) (an LRS-stuck device of a zero weight adds (573 - G_min)/(G_max - G_min)
   max|W|).

Writes stuck.md / stuck.json in RUN_DIR and prints the tables.
"""

from __future__ import annotations

import argparse
import statistics
from pathlib import Path
from typing import Any

import torch
from torch.func import functional_call

from noiseproof.atomic import write_json_atomic, write_text_atomic
from noiseproof.chip import chip_params
from noiseproof.config import ExperimentConfig, read_yaml
from noiseproof.restore import model_from_checkpoint
from noiseproof.seeding import derive_seed
from noiseproof.training.checkpoints import load_checkpoint

P_STATE = 0.005
"""Probability of each stuck state per device (the crossbar's stuck_lrs/hrs_fraction)."""


def correct(model: torch.nn.Module, weights: dict[str, torch.Tensor], x, y) -> torch.Tensor:
    """Bool per test point: the one-logit network with `weights` classifies it right."""
    logits = functional_call(model, weights, (x,)).reshape(-1)
    return (logits > 0).long() == y.reshape(-1).long()


def devices(noise, params: dict[str, torch.Tensor]) -> dict[str, Any]:
    """name -> target Conductances of every tensor the crossbar programs (its own rule and
    scales: TiO2Crossbar.program; the targets do not depend on the draw)."""
    programmed = noise.program(params, torch.Generator().manual_seed(0))
    return {name: chip.target for name, chip in programmed.items()}


def sensitivity(model, params, noise, x, y, clean) -> dict[str, Any]:
    """Per device and stuck state: the test points (clean-right ones) it turns wrong."""
    targets = devices(noise, params)
    lrs, hrs = noise.stuck_lrs_mean_us, (noise.stuck_hrs_low_us + noise.stuck_hrs_high_us) / 2
    events = []  # (name, column, index, state, points turned wrong)
    for name, target in targets.items():
        for c, column in enumerate(target.columns):
            for i in range(column.numel()):
                for state, g in (("LRS", lrs), ("HRS", hrs)):
                    changed = column.clone().reshape(-1)
                    changed[i] = g
                    columns = list(target.columns)
                    columns[c] = changed.reshape(column.shape)
                    weight = noise.mapping.to_weights(target.with_columns(*columns))
                    right = correct(model, {**params, name: weight}, x, y)
                    events.append((name, c, i, state, clean & ~right))
    return {"targets": targets, "events": events}


def monte_carlo(model, params, noise, x, y, transfers, seed, critical) -> dict[str, float]:
    """Shares over all chips, the chips with no stuck device and those with no critical one."""
    gen = torch.Generator().manual_seed(derive_seed(seed, "stuck-analysis"))
    rights, any_stuck, critical_stuck = [], [], []
    for _ in range(transfers):
        programmed = noise.program(params, gen)
        weights = {
            name: noise.mapping.to_weights(programmed[name].actual) if name in programmed else t
            for name, t in params.items()
        }
        rights.append(correct(model, weights, x, y))
        stuck = {
            (name, c, int(i))
            for name, chip in programmed.items()
            for c, mask in enumerate(chip.stuck_columns)
            for i in mask.reshape(-1).nonzero().reshape(-1)
        }
        any_stuck.append(bool(stuck))
        critical_stuck.append(bool(stuck & critical))
    right = torch.stack(rights).double()  # [chips, points]

    def share(keep: list[bool]) -> tuple[float, int]:
        rows = torch.tensor(keep)
        if not rows.any():
            return float("nan"), 0
        return float((right[rows].mean(0) >= 0.95).double().mean()), int(rows.sum())

    all_share, _ = share([True] * transfers)
    clear, n_clear = share([not s for s in any_stuck])
    no_critical, n_no_critical = share([not s for s in critical_stuck])
    return {
        "share": all_share,
        "share_no_stuck": clear,
        "chips_no_stuck": n_clear,
        "share_no_critical_stuck": no_critical,
        "chips_no_critical_stuck": n_no_critical,
    }


def weight_range(params, targets, noise) -> list[dict[str, Any]]:
    """Per programmed tensor: max|W|, max|W|/rms(W), an LRS-stuck zero weight's error / rms."""
    span = noise.mapping.g_max - noise.mapping.g_min
    rows = []
    for name in targets:
        w = params[name].detach().double()
        rms = float(w.pow(2).mean().sqrt())
        top = float(w.abs().max())
        error = (noise.stuck_lrs_mean_us - noise.mapping.g_min) / span * top
        rows.append(
            {
                "tensor": name,
                "max": top,
                "max_over_rms": top / rms,
                "lrs_error_over_rms": error / rms,
            }
        )
    return rows


def analyse(config: ExperimentConfig, run: Path, transfers: int, at_least: int) -> dict[str, Any]:
    """{method: [per-seed analysis]} for every network of the run."""
    data = config.dataset.load()
    noise = config.noise[0].model.with_level(config.levels[0])
    x, y = data.x_test, data.y_test
    out: dict[str, Any] = {}
    for method in config.methods:
        out[method.label] = []
        for seed in config.seeds:
            state, meta = load_checkpoint(run / "checkpoints" / f"{method.label}-seed{seed}.pt")
            model = model_from_checkpoint(state, meta).eval()
            params = {n: t.detach() for n, t in chip_params(model, config.chip).items()}
            clean = correct(model, params, x, y)
            found = sensitivity(model, params, noise, x, y, clean)
            turned = torch.stack([e[4] for e in found["events"]]).long()  # [events, points]
            per_point = turned.sum(0)
            predicted_wrong = 1 - (1 - P_STATE) ** per_point.double()
            critical = {(n, c, i) for n, c, i, _, hit in found["events"] if hit.sum() >= at_least}
            n_devices = sum(
                len(t.columns) * t.columns[0].numel() for t in found["targets"].values()
            )
            by_layer: dict[str, int] = {}
            for name, _, _ in critical:
                by_layer[name] = by_layer.get(name, 0) + 1
            out[method.label].append(
                {
                    "seed": seed,
                    "clean": float(clean.double().mean()),
                    "devices": n_devices,
                    "critical_devices": len(critical),
                    "critical_by_tensor": by_layer,
                    "events_turning_a_point": int((turned.sum(1) > 0).sum()),
                    "predicted_share_stuck_only": float(
                        (clean & (predicted_wrong <= 0.05)).double().mean()
                    ),
                    "chips_with_a_critical_device": 1 - (1 - 2 * P_STATE) ** len(critical),
                    **monte_carlo(model, params, noise, x, y, transfers, seed, critical),
                    "weights": weight_range(params, found["targets"], noise),
                }
            )
    return out


def markdown(table: dict[str, Any], transfers: int, at_least: int) -> str:
    """The per-network table and the per-method means."""

    def pct(v: float) -> str:
        return f"{100 * v:.1f}"

    lines = [
        f"Critical device: one of its stuck states turns >= {at_least} test points wrong. "
        f"Shares (%) of test points right on >= 95 % of {transfers} chips.",
        "",
        "| method | seed | clean % | critical devices (of all) | per tensor | chips with one "
        "(%) | predicted share, stuck only | share, all chips | share, chips with no stuck "
        "device | share, chips with no critical device stuck |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for method, rows in table.items():
        for r in rows:
            tensors = ", ".join(f"{k} {v}" for k, v in sorted(r["critical_by_tensor"].items()))
            lines.append(
                f"| {method} | {r['seed']} | {pct(r['clean'])} | {r['critical_devices']} "
                f"({r['devices']}) | {tensors or '-'} | {pct(r['chips_with_a_critical_device'])}"
                f" | {pct(r['predicted_share_stuck_only'])} | {pct(r['share'])} | "
                f"{pct(r['share_no_stuck'])} ({r['chips_no_stuck']} chips) | "
                f"{pct(r['share_no_critical_stuck'])} ({r['chips_no_critical_stuck']} chips) |"
            )
    lines += [
        "",
        "| method | critical devices | predicted share, stuck only | share, all chips | "
        "no critical device stuck | no device stuck | LRS-stuck error / rms(W), per tensor |",
        "|---|---|---|---|---|---|---|",
    ]
    for method, rows in table.items():

        def mean_sd(key: str, scale: float = 100.0, rs: list = rows) -> str:
            values = [scale * r[key] for r in rs]
            sd = statistics.stdev(values) if len(values) > 1 else 0.0
            return f"{statistics.fmean(values):.1f} ± {sd:.1f}"

        errors = {}
        for r in rows:
            for w in r["weights"]:
                errors.setdefault(w["tensor"], []).append(w["lrs_error_over_rms"])
        shown = ", ".join(f"{k} {statistics.fmean(v):.1f}" for k, v in errors.items())
        lines.append(
            f"| {method} | {mean_sd('critical_devices', 1.0)} | "
            f"{mean_sd('predicted_share_stuck_only')} | {mean_sd('share')} | "
            f"{mean_sd('share_no_critical_stuck')} | {mean_sd('share_no_stuck')} | {shown} |"
        )
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> dict[str, Any]:
    """Command line (module docstring)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run", help="output folder of run.py")
    parser.add_argument("--transfers", type=int, default=2000, help="chips per network")
    parser.add_argument(
        "--critical", type=int, default=2, help="test points a critical device turns wrong"
    )
    args = parser.parse_args(argv)
    if args.transfers < 1:
        parser.error("--transfers must be >= 1")
    if args.critical < 1:
        parser.error("--critical must be >= 1")
    run = Path(args.run)
    config = ExperimentConfig.parse(read_yaml(run / "config.yaml"))
    with torch.no_grad():
        table = analyse(config, run, args.transfers, args.critical)
    text = markdown(table, args.transfers, args.critical)
    write_json_atomic(run / "stuck.json", table)
    write_text_atomic(run / "stuck.md", text)
    print(text, end="")
    return table


if __name__ == "__main__":
    main()

"""Calibrated chips in a compare run (the `calibration:` section): every Monte Carlo chip of an
evaluation is also calibrated on its own draw (noiseproof.calibration) and tested again.

Chip k is the stream's chip k (noiseproof.calibration.chips.chip_stream: the chip the
uncalibrated evaluation tests), calibrated on `calibration.examples` examples of the training
split drawn by the run's seed (the same split for every chip, method, noise model and level;
disjoint from the test split), so a calibrated chip depends only on (seed, noise, level, k)
and the checkpoint: a shard of chips gives exactly the values the whole evaluation gives.
An evaluation record keeps the calibrated chips' summary under 'calibrated' (a shard record:
their per-chip task sums and per-unit counts); results.json, the CSV, the tables, plots,
comparisons and report show them as the method labelled '<method>-calibrated', chip-paired
with the uncalibrated chips.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from typing import Any, cast

import torch
from torch import Tensor, nn

from noiseproof.analog import ir_drop_window
from noiseproof.calibration.chips import chip_stream
from noiseproof.calibration.fit import ChipEffects, applied, calibrate_chip
from noiseproof.calibration.settings import CalibrationConfig
from noiseproof.calibration.split import calibration_split
from noiseproof.chip import chip_params, detached, forward
from noiseproof.data.base import Dataset
from noiseproof.devices import model_device
from noiseproof.errors import NoiseproofError
from noiseproof.evaluation.chipstream import ChipStream
from noiseproof.evaluation.transfers import TransferResult
from noiseproof.evaluation.vectorised import outcomes
from noiseproof.inputs import to
from noiseproof.modes import evaluating
from noiseproof.noise.base import NoiseModel
from noiseproof.precision import autocast
from noiseproof.seeding import derive_seed, global_rng
from noiseproof.settings import RunSettings
from noiseproof.tasks import Task

SUFFIX = "-calibrated"
"""What a method's label gets for its calibrated chips."""


def calibrated_transfers(
    model: nn.Module,
    data: Dataset,
    noise: NoiseModel,
    calibration: CalibrationConfig,
    *,
    seed: int,
    noise_label: str,
    first_chip: int,
    chips: int,
    settings: RunSettings,
    task: Task,
) -> TransferResult:
    """The task's outcomes on the test split of chips [first_chip, first_chip + chips) of the
    run (seed, noise_label, noise.level), each calibrated on its own draw (module docstring),
    tested in batches of `settings.eval_batch_size` under `settings.eval_precision`. Under
    `settings.analog` (with its ranges attached) chip k is calibrated with output noise drawn
    from (base seed, 'calibration', k) and tested with the stream the uncalibrated chip k is
    tested with (base seed, 'forward', k; noiseproof.evaluation.transfers)."""
    device = model_device(model)
    picked = detached(chip_params(model, settings.selection))
    clean = {name: t.to(device) for name, t in picked.items()}
    stream = chip_stream(noise, clean, seed, noise_label)
    try:
        x_cal, y_cal = calibration_split(data, calibration.examples, seed)
    except ValueError as error:
        raise NoiseproofError(f"calibration: {error}") from None
    x_cal, y_cal = to(x_cal, device), y_cal.to(device)
    x, y = to(data.x_test, device), data.y_test.to(device)
    analog = settings.analog if settings.analog and settings.analog.in_the_forward else None
    window = ir_drop_window(analog, noise)

    def effects(stream: ChipStream, k: int, use: str) -> ChipEffects | None:
        """Chip k's analog forward, its output noise drawn from (base seed, `use`, k)."""
        if analog is None:
            return None
        gen = torch.Generator(device=device).manual_seed(derive_seed(stream.seed, use, k))
        return ChipEffects(analog, gen, window)

    sums: list[Tensor] = []
    counts: Tensor | None = None
    for k in range(first_chip, first_chip + chips):
        chip = stream.chip(k)
        with global_rng(stream.seed, "calibration", k, device=device):  # the user's own draws
            fitted = calibrate_chip(
                model,
                clean,
                chip,
                x_cal,
                y_cal,
                calibration,
                task,
                effects(stream, k, "calibration"),
            )
        tested = effects(stream, k, "forward")  # the uncalibrated chip's output noise stream
        with (
            global_rng(stream.seed, "calibrated", k, device=device),
            torch.no_grad(),
            evaluating(model),
            autocast(device, settings.eval_precision),
            applied(model, list(clean), fitted, tested),
        ):
            part, hits = outcomes(
                functools.partial(forward, model, {**fitted.state, **chip}),
                x,
                y,
                settings.eval_batch_size,
                task,
            )
        sums.append(part.to(torch.float64))
        counts = hits.long() if counts is None else counts + hits.long()
    assert counts is not None  # chips >= 1
    mask = task.unit_mask(y)
    return TransferResult(
        task=task,
        sums=torch.stack(sums).cpu(),
        correct_counts=counts.cpu(),
        mask=None if mask is None else mask.cpu(),
    )


def shard_part(result: TransferResult) -> dict[str, Any]:
    """What a shard record keeps of its calibrated chips: per-chip sums, per-unit counts."""
    return {
        "calibrated_sums": result.sums.tolist(),
        "calibrated_counts": result.correct_counts.tolist(),
    }


def merged_result(shards: Sequence[dict[str, Any]], task: Task) -> TransferResult | None:
    """The calibrated chips of shard records (in chip order), or None without calibration."""
    if "calibrated_sums" not in shards[0]:
        return None
    first = shards[0]
    return TransferResult(
        task=task,
        sums=torch.tensor(
            [
                [float("nan") if v is None else v for v in row]
                for s in shards
                for row in s["calibrated_sums"]
            ],
            dtype=torch.float64,
        ),
        correct_counts=cast(  # shards is not empty: a tensor, never the start value 0
            Tensor, sum(torch.tensor(s["calibrated_counts"], dtype=torch.int64) for s in shards)
        ),
        mask=torch.tensor(first["mask"], dtype=torch.bool) if "mask" in first else None,
    )


def with_calibrated(records: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """The evaluation records for results.json: each record holding calibrated chips is
    followed by a record of them, labelled '<method>-calibrated' (same chips, seeds, clean
    values; its 'calibration' settings and 'calibrated_from' method)."""
    out = []
    for record in records:
        calibrated = record.get("calibrated")
        plain = {k: v for k, v in record.items() if k != "calibrated"}
        out.append(plain)
        if calibrated is not None:
            summary = {k: v for k, v in calibrated.items() if k != "settings"}
            out.append(
                {
                    **plain,
                    **summary,
                    "method": record["method"] + SUFFIX,
                    "calibrated_from": record["method"],
                    "calibration": calibrated["settings"],
                }
            )
    return out

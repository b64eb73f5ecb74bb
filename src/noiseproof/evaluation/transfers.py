"""Monte Carlo transfers: program K simulated chips, test each, keep fixed-size statistics.

One transfer = one draw of the noise model applied to the on-chip parameters, then one pass
over the test set. Per transfer we keep its accuracy ([K] floats) and per example the number
of transfers that got it right ([N] ints); the [K, N] boolean matrix is kept only on request,
so memory stays bounded for any K.

Chip k's noise depends only on the caller's generator (one base seed drawn from it) and on k
(evaluation.chipstream), so any chunking, batching or split of the chips across workers
(`first_chip`) gives every chip the same accuracy. Chips are evaluated a chunk at a time:
all chips of a chunk in one vmapped forward where that pays (small models on small test
sets: evaluation.vectorised), else one plain forward per chip, which is then at its floor.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor, nn

from noiseproof.analog import AnalogForward, analog_forward
from noiseproof.chip import ChipSelection, Params, chip_params, detached, forward
from noiseproof.devices import model_device
from noiseproof.evaluation.arguments import check_count, check_evaluation_arguments, check_generator
from noiseproof.evaluation.chipstream import ChipStream, base_seed, chip_bytes
from noiseproof.evaluation.vectorised import (
    auto_chunk,
    census,
    pays,
    stacked_predictions,
    vmap_agrees,
)
from noiseproof.inputs import Inputs, count, split, to
from noiseproof.modes import evaluating
from noiseproof.noise.base import NoiseModel
from noiseproof.precision import autocast, check_precision
from noiseproof.progress import progress_bar
from noiseproof.seeding import derive_seed
from noiseproof.tasks import predict

MEMORY_BUDGET = 256 * 2**20
"""Bytes one chunk of chips may hold at once: stacked tensors and activations of a vmapped
forward, or the correctness rows kept with keep_matrix."""

CPU_WORKING_SET = 8 * 2**20
"""On the CPU a vmapped chunk is kept cache-sized: on the moons MLP, chunks of 128-512 chips
ran 1.3x faster than one chunk of 1,000 whose activations spill to memory."""


@dataclass(frozen=True)
class TransferResult:
    """Outcome of K transfers on N test examples."""

    accuracy: Tensor  # [K] float64: accuracy of each transfer
    correct_counts: Tensor  # [N] int64: transfers in which each example was right
    matrix: Tensor | None = None  # [K, N] bool, only with keep_matrix=True

    @property
    def transfers(self) -> int:
        return len(self.accuracy)


def run_transfers(
    model: nn.Module,
    noise: NoiseModel,
    x: Inputs,
    y: Tensor,
    transfers: int,
    generator: torch.Generator,
    *,
    selection: ChipSelection | None = None,
    params: Params | None = None,
    batch_size: int = 2000,
    keep_matrix: bool = False,
    progress: bool = False,
    first_chip: int = 0,
    chunk_size: int | None = None,
    vectorise: bool | None = None,
    precision: str = "fp32",
    analog: AnalogForward | None = None,
) -> TransferResult:
    """Accuracy of `transfers` independent noisy chips of `model` on (x, y).

    params: the clean on-chip parameters to perturb (default: those `selection` picks).
    Each transfer draws its noise once (frozen for the whole test set). `generator`, an
    explicit torch.Generator (required: nothing is drawn from the global random state), gives
    one base seed (it moves on by one draw); chip k's noise depends on that seed and k only.
    first_chip: evaluate chips [first_chip, first_chip + transfers) of the run the generator
    defines: a worker gets exactly the per-chip accuracies the whole run gives those chips.
    chunk_size: chips evaluated together (default: a vmapped chunk within MEMORY_BUDGET,
    CPU_WORKING_SET on the CPU; see _plan); it never changes a result. vectorise: None picks
    the vmapped forward where it pays and runs this model correctly, else the loop; True asks
    for vmap (ValueError if the model cannot); False for the loop. precision: "fp32", or
    "bf16"/"fp16" autocast around the forwards (the noise is drawn in full precision).
    analog: the analog forward effects (DAC, output noise, ADC: noiseproof.analog) applied to
    every chip's on-chip layers; chip k's output noise is drawn from a generator seeded by
    (the run's base seed, k), in batch order, so it depends on the chip and `batch_size`, never
    on chunking or sharding. These chips are evaluated one by one (no vmap).
    Runs on the model's device: x and y moved there once, the noise drawn there, counts kept
    there and read back once (keep_matrix rows once per chunk); results come back on the CPU.
    """
    check_evaluation_arguments(model, x, y, "x", "y")
    if not isinstance(noise, NoiseModel):
        raise TypeError(f"noise must be a NoiseModel (create_noise), got {type(noise).__name__}")
    check_count(transfers, "transfers")
    check_count(batch_size, "batch_size")
    check_count(first_chip, "first_chip", minimum=0)
    if chunk_size is not None:
        check_count(chunk_size, "chunk_size")
    if vectorise is not None and not isinstance(vectorise, bool):
        raise TypeError(f"vectorise must be None, True or False, got {vectorise!r}")
    check_precision(precision)
    check_generator(generator)
    if analog is not None and not isinstance(analog, AnalogForward):
        raise TypeError(f"analog must be an AnalogForward or None, got {type(analog).__name__}")
    if analog is not None and vectorise:
        raise ValueError("vectorise=True cannot run the analog forward effects: use None")
    device = model_device(model)
    picked = params if params is not None else chip_params(model, selection)
    clean = {name: t.to(device) for name, t in detached(picked).items()}
    x, y = to(x, device), y.to(device)
    stream = ChipStream(noise, clean, base_seed(generator), device)
    hits = torch.zeros(transfers, dtype=torch.int64, device=device)
    counts = torch.zeros(len(y), dtype=torch.int64, device=device)
    matrix = torch.empty(transfers, len(y), dtype=torch.bool) if keep_matrix else None
    with (
        torch.no_grad(),
        evaluating(model),
        autocast(device, precision),
        progress_bar(transfers, "transfers", enabled=progress) as bar,
    ):
        vmap_choice = False if analog is not None else vectorise
        together, chunk = _plan(model, clean, x, transfers, batch_size, vmap_choice, stream)
        chunk = chunk_size or chunk
        for start in range(0, transfers, chunk):
            stop = min(start + chunk, transfers)
            rows = []
            if together:
                chips = stream.chips(first_chip + start, first_chip + stop)
                rows.append(stacked_predictions(model, chips, x, batch_size) == y)
                hits[start:stop] = rows[0].sum(dim=1)
                counts += rows[0].sum(dim=0)
                bar.update(stop - start)
            else:
                for k in range(start, stop):
                    chip = stream.chip(first_chip + k)
                    if analog is None:
                        correct = _correct(model, chip, x, y, batch_size)
                    else:
                        seed = derive_seed(stream.seed, "forward", first_chip + k)
                        gen = torch.Generator(device=device).manual_seed(seed)
                        with analog_forward(model, list(clean), analog, gen):
                            correct = _correct(model, chip, x, y, batch_size)
                    hits[k] = correct.sum()
                    counts += correct
                    rows += [correct.unsqueeze(0)] if matrix is not None else []
                    bar.update()
            if matrix is not None:
                matrix[start:stop] = torch.cat(rows).cpu()
    accuracy = hits.cpu().double() / len(y)
    return TransferResult(accuracy=accuracy, correct_counts=counts.cpu(), matrix=matrix)


def _plan(
    model: nn.Module,
    clean: Params,
    x: Inputs,
    transfers: int,
    batch_size: int,
    vectorise: bool | None,
    stream: ChipStream,
) -> tuple[bool, int]:
    """(vmapped forward or loop, default chunk size) of one run (see run_transfers).

    The path is decided once per run from the model, the test set and the device, never from
    the chunk size. A vmapped chunk fits MEMORY_BUDGET, CPU_WORKING_SET on the CPU
    (auto_chunk), rounded down to whole blocks of the chip stream (no joining of blocks);
    the loop takes each chip from its block (one block held) and a loop chunk holds its
    correctness rows (prediction and bool: 9 bytes each) within MEMORY_BUDGET.
    """
    device = stream.device
    examples = min(count(x), batch_size)
    cost = census(model, clean, x) if vectorise is not False else None
    if cost is not None and (vectorise or pays(cost, count(x), device)):
        if vmap_agrees(model, clean, x):
            budget = CPU_WORKING_SET if device.type == "cpu" else MEMORY_BUDGET
            chunk = auto_chunk(cost, chip_bytes(clean), examples, transfers, budget)
            return True, chunk - chunk % stream.block if chunk > stream.block else chunk
        if vectorise:
            raise ValueError(
                f"vectorise=True, but torch.func.vmap cannot run {type(model).__name__} as "
                "the plain forward does: use vectorise=None (auto) or False"
            )
    return False, max(1, min(transfers, MEMORY_BUDGET // (9 * count(x))))


def _correct(model: nn.Module, chip: Params, x: Inputs, y: Tensor, batch_size: int) -> Tensor:
    """Correctness [N] of one chip, one plain forward per batch."""
    predicted = [predict(forward(model, chip, part)) for part in split(x, batch_size)]
    return torch.cat(predicted) == y

"""Monte Carlo transfers: program K simulated chips, test each, keep fixed-size statistics.

One transfer = one draw of the noise model applied to the on-chip parameters, then one pass
over the test set. What a chip is measured by is the task's (noiseproof.tasks): per transfer we
keep the task's sums over the test set ([K, S] floats, from which each metric per chip follows:
accuracy, MSE, perplexity...) and per unit (example, or token) the number of transfers that
got it right (the task's hit: classified right, within tolerance); the [K, units] boolean
matrix is kept only on request, so memory stays bounded for any K.

Chip k's noise depends only on the caller's generator (one base seed drawn from it) and on k
(evaluation.chipstream), so any chunking, batching or split of the chips across workers
(`first_chip`) gives every chip the same accuracy. Chips are evaluated a chunk at a time:
all chips of a chunk in one vmapped forward where that pays (small models on small test
sets: evaluation.vectorised), else one plain forward per chip, which is then at its floor.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, TypedDict, Unpack

import torch
from torch import Tensor, nn

from noiseproof.analog import (
    AnalogForward,
    analog_forward,
    check_ranges,
    ir_drop_window,
    layer_names,
)
from noiseproof.chip import ChipSelection, Params, chip_params, detached, forward
from noiseproof.devices import model_device
from noiseproof.evaluation.arguments import (
    check_count,
    check_evaluation_arguments,
    check_generator,
    check_outputs_fit,
)
from noiseproof.evaluation.chipstream import ChipStream, base_seed, chip_bytes
from noiseproof.evaluation.vectorised import (
    auto_chunk,
    census,
    outcomes,
    pays,
    stacked_outcomes,
    vmap_agrees,
)
from noiseproof.inputs import Inputs, count, to
from noiseproof.modes import evaluating
from noiseproof.noise.base import NoiseModel
from noiseproof.precision import autocast, check_precision
from noiseproof.progress import progress_bar
from noiseproof.seeding import derive_seed, global_rng, seed_global
from noiseproof.settings import EVALUATION_NAMES, RunSettings, from_options
from noiseproof.tasks import Task

MEMORY_BUDGET = 256 * 2**20
"""Bytes one chunk of chips may hold at once: stacked tensors and activations of a vmapped
forward, or the correctness rows kept with keep_matrix."""

CPU_WORKING_SET = 8 * 2**20
"""On the CPU a vmapped chunk is kept cache-sized: on the moons MLP, chunks of 128-512 chips
ran 1.3x faster than one chunk of 1,000 whose activations spill to memory."""


@dataclass(frozen=True)
class TransferResult:
    """Outcome of K transfers on a test set, measured by `task`.

    sums: [K, S] float64, each chip's task sums over the test set (`task.sum_names`);
    metrics: {metric: [K] float64}, each chip's metrics (`task.chip_metrics(sums)`);
    correct_counts: per unit (example [N], or token [N, T]), the transfers with a hit (right
    class, error within tolerance, right next token); mask: the units that count (None: all;
    padding tokens do not); matrix: [K, *units] bool hits, only with keep_matrix=True.

    >>> import torch, noiseproof as nf
    >>> model = torch.nn.Linear(3, 2)
    >>> x, y = torch.randn(8, 3, generator=nf.generator(0)), torch.tensor([0, 1] * 4)
    >>> noise = nf.create_noise("relative_gaussian")
    >>> chips = nf.run_transfers(model, noise, x, y, 5, nf.generator(0))
    >>> chips.transfers, chips.sums.shape, chips.correct_counts.shape  # 5 chips, 8 examples
    (5, torch.Size([5, 2]), torch.Size([8]))
    """

    task: Task
    sums: Tensor
    correct_counts: Tensor
    mask: Tensor | None = None
    matrix: Tensor | None = None

    @property
    def transfers(self) -> int:
        return len(self.sums)

    @property
    def metrics(self) -> dict[str, Tensor]:
        """Each metric of the task per chip ([K] float64)."""
        return self.task.chip_metrics(self.sums)

    @property
    def accuracy(self) -> Tensor:
        """Each chip's accuracy ([K]): classification's and token classification's metric."""
        metrics = self.metrics
        if "accuracy" not in metrics:
            raise ValueError(
                f"task {self.task.registered_name!r} has no accuracy: read "
                f"result.metrics[name] ({', '.join(metrics)})"
            )
        return metrics["accuracy"]


class TransferOptions(TypedDict, total=False):
    """`run_transfers`' friendly keyword arguments: the RunSettings fields they set (see
    EVALUATION_NAMES), and the chunking (never changes a result)."""

    selection: ChipSelection | None
    batch_size: int
    precision: str
    analog: AnalogForward | None
    task: Task | str | Mapping[str, Any] | None
    chunk_size: int | None
    vectorise: bool | None


def run_transfers(
    model: nn.Module,
    noise: NoiseModel,
    x: Inputs,
    y: Tensor,
    transfers: int,
    generator: torch.Generator,
    *,
    settings: RunSettings | None = None,
    params: Params | None = None,
    first_chip: int = 0,
    keep_matrix: bool = False,
    progress: bool = False,
    **options: Unpack[TransferOptions],
) -> TransferResult:
    """The task's metrics of `transfers` independent noisy chips of `model` on (x, y).

    settings: the run's settings (noiseproof.settings.RunSettings: chip selection, analog
    forward, evaluation batch size and precision, task); the keyword arguments selection,
    batch_size (eval_batch_size), precision (eval_precision), analog and task build them or
    replace their fields (`TransferOptions`); chunk_size and vectorise tune the chunking.
    params: the clean on-chip parameters to perturb (default: those the selection picks).
    Each transfer draws its noise once (frozen for the whole test set). `generator`, an
    explicit torch.Generator (required: nothing is drawn from the global random state), gives
    one base seed (it moves on by one draw); chip k's noise depends on that seed and k only.
    A model that draws from the global state in its forward (torch.rand, numpy, `random`)
    runs in a fork of it (noiseproof.seeding.global_rng) seeded from the base seed, reseeded
    from (base seed, k) before chip k (such a model is never vmapped): its chips too depend
    on the generator and k only, and the caller's global state is as it was afterwards.
    first_chip: evaluate chips [first_chip, first_chip + transfers) of the run the generator
    defines: a worker gets exactly the per-chip accuracies the whole run gives those chips.
    chunk_size: chips evaluated together (default: a vmapped chunk within MEMORY_BUDGET,
    CPU_WORKING_SET on the CPU; see _plan); it never changes a result. vectorise: None picks
    the vmapped forward where it pays and runs this model correctly, else the loop; True asks
    for vmap (ValueError if the model cannot); False for the loop. precision: "fp32", or
    "bf16"/"fp16" autocast around the forwards (the noise is drawn in full precision).
    analog: the analog forward effects (DAC, IR drop, output noise, ADC: noiseproof.analog;
    learned or calibrated ranges as `analog.with_ranges` attached them; bit-sliced weights
    drawn slice by slice, noiseproof.evaluation.chipstream) applied to every chip's on-chip
    layers (IR drop over `noise`'s conductance window, refused
    in one line for a noise model without one); chip k's output noise is drawn from a
    generator seeded by (the run's base seed, k), in batch order, so it depends on the chip and
    `batch_size`, never on chunking or sharding. These chips are evaluated one by one (no vmap).
    task: what the chips are measured by (noiseproof.tasks: a Task, a name or mapping; None
    infers it from y and x: class indices, real targets, next tokens...).
    Runs on the model's device: x and y moved there once, the noise drawn there, sums and
    counts kept there and read back once (keep_matrix rows once per chunk); results come back
    on the CPU.

    >>> import torch, noiseproof as nf
    >>> data = nf.load_dataset("digits")
    >>> _ = torch.manual_seed(0)
    >>> model = nf.build_model({"name": "mlp", "hidden": [16]}, data.input_shape, 10)
    >>> noise = nf.create_noise({"name": "relative_gaussian", "zeta": 0.3})
    >>> chips = nf.run_transfers(model, noise, data.x_test, data.y_test, 20, nf.generator(0))
    >>> chips.accuracy.shape, list(chips.metrics)
    (torch.Size([20]), ['accuracy'])
    >>> again = nf.run_transfers(model, noise, data.x_test, data.y_test, 20, nf.generator(0))
    >>> torch.equal(chips.accuracy, again.accuracy)  # chip k depends on the seed and k only
    True
    """
    chunk_size, vectorise = options.pop("chunk_size", None), options.pop("vectorise", None)
    settings = from_options(settings, options, EVALUATION_NAMES)
    selection, batch_size, analog = settings.selection, settings.eval_batch_size, settings.analog
    precision = settings.eval_precision
    task = check_evaluation_arguments(model, x, y, "x", "y", settings.task)
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
    window = ir_drop_window(analog, noise)  # refuses a noise model without conductances
    device = model_device(model)
    picked = params if params is not None else chip_params(model, selection)
    clean = {name: t.to(device) for name, t in detached(picked).items()}
    if analog is not None and analog.in_the_forward:  # its learned/calibrated ranges, if any
        check_ranges(analog, analog.ranges, layer_names(model, list(clean)))
    x, y = to(x, device), y.to(device)
    probe = check_outputs_fit(model, clean, x, y, task)
    slicing = analog.slicing if analog is not None else None  # bit-sliced weights
    stream = ChipStream(noise, clean, base_seed(generator), device, slicing)
    head = y[: len(probe)]
    sums = torch.zeros(
        transfers, task.sums(probe, head).shape[-1], dtype=torch.float64, device=device
    )
    units = task.hits(probe, head).shape[1:]
    counts = torch.zeros(len(y), *units, dtype=torch.int64, device=device)
    matrix = torch.empty(transfers, len(y), *units, dtype=torch.bool) if keep_matrix else None
    with (
        global_rng(stream.seed, "transfers", device=device),  # the user's own draws, if any
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
                sums[start:stop], hits = stacked_outcomes(model, chips, x, y, batch_size, task)
                counts += hits.sum(dim=0)
                rows.append(hits)
                bar.update(stop - start)
            else:
                for k in range(start, stop):
                    chip = stream.chip(first_chip + k)
                    seed_global(derive_seed(stream.seed, "global", first_chip + k), device)
                    if analog is None or not analog.in_the_forward:
                        sums[k], hits = chip_outcomes(model, chip, x, y, batch_size, task)
                    else:
                        seed = derive_seed(stream.seed, "forward", first_chip + k)
                        gen = torch.Generator(device=device).manual_seed(seed)
                        with analog_forward(model, list(clean), analog, gen, window):
                            sums[k], hits = chip_outcomes(model, chip, x, y, batch_size, task)
                    counts += hits
                    rows += [hits.unsqueeze(0)] if matrix is not None else []
                    bar.update()
            if matrix is not None:
                matrix[start:stop] = torch.cat(rows).cpu()
    mask = task.unit_mask(y)
    return TransferResult(
        task=task,
        sums=sums.cpu(),
        correct_counts=counts.cpu(),
        mask=None if mask is None else mask.cpu(),
        matrix=matrix,
    )


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


def chip_outcomes(
    model: nn.Module, chip: Params, x: Inputs, y: Tensor, batch_size: int, task: Task
) -> tuple[Tensor, Tensor]:
    """One chip's task sums over (x, y) ([S]) and hits per unit, one plain forward per batch."""
    return outcomes(lambda xs: forward(model, chip, xs), x, y, batch_size, task)

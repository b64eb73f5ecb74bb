"""Monte Carlo transfers: program K simulated chips, test each, keep fixed-size statistics.

One transfer = one draw of the noise model applied to the on-chip parameters, then one pass
over the test set. Per transfer we keep its accuracy ([K] floats) and per example the number
of transfers that got it right ([N] ints); the [K, N] boolean matrix is kept only on request,
so memory stays bounded for any K.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor, nn

from noiseproof.chip import ChipSelection, Params, chip_params, detached
from noiseproof.evaluation.arguments import check_count, check_evaluation_arguments, check_generator
from noiseproof.evaluation.clean import predictions
from noiseproof.inputs import Inputs
from noiseproof.noise.base import NoiseModel
from noiseproof.progress import progress_bar


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
) -> TransferResult:
    """Accuracy of `transfers` independent noisy chips of `model` on (x, y).

    params: the clean on-chip parameters to perturb (default: those `selection` picks).
    Each transfer draws its noise once (frozen for the whole test set) from `generator`, an
    explicit torch.Generator (required: nothing is drawn from the global random state).
    """
    check_evaluation_arguments(model, x, y, "x", "y")
    if not isinstance(noise, NoiseModel):
        raise TypeError(f"noise must be a NoiseModel (create_noise), got {type(noise).__name__}")
    check_count(transfers, "transfers")
    check_count(batch_size, "batch_size")
    check_generator(generator)
    clean = detached(params if params is not None else chip_params(model, selection))
    accuracy = torch.empty(transfers, dtype=torch.float64)
    counts = torch.zeros(len(y), dtype=torch.int64)
    matrix = torch.empty(transfers, len(y), dtype=torch.bool) if keep_matrix else None
    with progress_bar(transfers, "transfers", enabled=progress) as bar:
        for k in range(transfers):
            correct = predictions(model, x, batch_size, noise.sample(clean, generator)) == y
            accuracy[k] = correct.double().mean()
            counts += correct
            if matrix is not None:
                matrix[k] = correct
            bar.update()
    return TransferResult(accuracy=accuracy, correct_counts=counts, matrix=matrix)

"""Monte Carlo transfers against the slow deepcopy reference, and what they leave untouched."""

from __future__ import annotations

import copy
import functools

import pytest
import torch
from torch import nn

from noiseproof.chip import ChipSelection, chip_params
from noiseproof.evaluation.chipstream import BLOCK_MAX, block_size, vmappable
from noiseproof.evaluation.clean import clean_accuracy
from noiseproof.evaluation.metrics import accuracy_summary
from noiseproof.evaluation.transfers import run_transfers
from noiseproof.noise import create_noise
from reference.transfers_reference import correctness_matrix

N = 120


def blobs(classes: int, features: int = 6, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Gaussian blobs around random centres, so a trained-looking model gets most of them."""
    g = torch.Generator().manual_seed(seed)
    centres = 2.0 * torch.randn(max(classes, 2), features, generator=g)
    y = torch.randint(0, max(classes, 2), (N,), generator=g)
    x = centres[y] + 0.8 * torch.randn(N, features, generator=g)
    return x, y


def fitted(model: nn.Module, x: torch.Tensor, y: torch.Tensor, steps: int = 80) -> nn.Module:
    """A few full-batch Adam steps, so accuracy is high but not perfect under noise."""
    optimizer = torch.optim.Adam(model.parameters(), lr=0.05)
    for _ in range(steps):
        logits = model(x)
        if logits.shape[1] == 1:
            loss = nn.functional.binary_cross_entropy_with_logits(logits[:, 0], y.float())
        else:
            loss = nn.functional.cross_entropy(logits, y)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    return model


class Bn(nn.Module):
    """An MLP with a BatchNorm (digital) between its on-chip layers."""

    def __init__(self) -> None:
        super().__init__()
        self.fc1 = nn.Linear(6, 16)
        self.bn = nn.BatchNorm1d(16)
        self.fc2 = nn.Linear(16, 3)

    def forward(self, x):
        return self.fc2(torch.relu(self.bn(self.fc1(x))))


def case(kind: str) -> tuple[nn.Module, torch.Tensor, torch.Tensor]:
    """A fitted model (a fresh copy every call, so tests can change it) and its data."""
    model, x, y = fitted_case(kind)
    return copy.deepcopy(model), x, y


@functools.cache
def fitted_case(kind: str) -> tuple[nn.Module, torch.Tensor, torch.Tensor]:
    torch.manual_seed(0)
    if kind == "multiclass":
        x, y = blobs(4)
        model = nn.Sequential(nn.Linear(6, 12), nn.Tanh(), nn.Linear(12, 4))
    elif kind == "binary":
        x, y = blobs(2)
        model = nn.Sequential(nn.Linear(6, 8), nn.Sigmoid(), nn.Linear(8, 1))
    else:
        x, y = blobs(3)
        model = Bn()
    return fitted(model, x, y).eval(), x, y


NOISES = [
    {"name": "relative_gaussian", "zeta": 0.6},
    {
        "name": "chain",
        "models": [{"name": "quantize", "levels": 5}, {"name": "stuck_at", "p": 0.1}],
    },
]


def library_block(model: nn.Module, noise) -> int:
    """The block size of the library's chip stream for this model and noise model."""
    clean = {name: t.detach() for name, t in chip_params(model).items()}
    return block_size(clean, vmappable(noise, clean, torch.device("cpu")))


@pytest.mark.parametrize("noise", NOISES, ids=lambda s: s["name"])
@pytest.mark.parametrize("kind", ["multiclass", "binary", "bn"])
def test_matches_the_deepcopy_reference(kind, noise):
    model, x, y = case(kind)
    noise = create_noise(noise)
    transfers = 12
    result = run_transfers(
        model, noise, x, y, transfers, torch.Generator().manual_seed(4), keep_matrix=True
    )
    on_chip = list(chip_params(model))
    block = library_block(model, noise)
    assert block == (1 if noise.registered_name == "chain" else BLOCK_MAX)  # quantize: plainly
    expected = correctness_matrix(
        model, noise, x, y, transfers, torch.Generator().manual_seed(4), on_chip, block
    )
    assert torch.equal(result.matrix, expected)
    assert torch.equal(result.correct_counts, expected.sum(dim=0))
    assert torch.equal(result.accuracy, expected.double().mean(dim=1))
    assert result.accuracy.dtype == torch.float64
    assert result.correct_counts.dtype == torch.int64
    assert result.transfers == transfers
    # the noise is strong enough that the chips differ, yet most examples survive
    assert len(result.accuracy.unique()) > 1
    assert 0.3 < float(result.accuracy.mean()) < 1.0


def test_keep_matrix_is_off_by_default_and_changes_nothing_else():
    model, x, y = case("multiclass")
    noise = create_noise({"name": "lognormal", "sigma": 0.8})
    light = run_transfers(model, noise, x, y, 9, torch.Generator().manual_seed(1))
    full = run_transfers(model, noise, x, y, 9, torch.Generator().manual_seed(1), keep_matrix=True)
    assert light.matrix is None
    assert full.matrix.shape == (9, N) and full.matrix.dtype == torch.bool
    assert torch.equal(light.accuracy, full.accuracy)
    assert torch.equal(light.correct_counts, full.correct_counts)


def test_explicit_params_and_selection_choose_what_is_perturbed():
    model, x, y = case("bn")
    noise = create_noise({"name": "additive_gaussian", "eta": 0.5})
    head = {"fc2.weight": model.fc2.weight, "fc2.bias": model.fc2.bias}
    by_params = run_transfers(
        model, noise, x, y, 8, torch.Generator().manual_seed(2), params=head, keep_matrix=True
    )
    by_selection = run_transfers(
        model,
        noise,
        x,
        y,
        8,
        torch.Generator().manual_seed(2),
        selection=ChipSelection(exclude=("fc1.*",)),
        keep_matrix=True,
    )
    gen = torch.Generator().manual_seed(2)  # additive_gaussian: drawn by vmap, in blocks
    expected = correctness_matrix(model, noise, x, y, 8, gen, list(head), BLOCK_MAX)
    assert torch.equal(by_params.matrix, expected)
    assert torch.equal(by_selection.matrix, expected)


@pytest.mark.parametrize(
    "noise",
    [
        {"name": "relative_gaussian", "zeta": 0.0},
        {"name": "additive_gaussian", "eta": 0.0, "scale": "channel"},
        {"name": "lognormal", "sigma": 0.0},
        {"name": "stuck_at", "p": 0.0},
    ],
    ids=lambda s: s["name"],
)
def test_level_zero_gives_the_clean_accuracy_with_zero_spread(noise):
    model, x, y = case("bn")
    result = run_transfers(model, create_noise(noise), x, y, 5, torch.Generator().manual_seed(0))
    clean = clean_accuracy(model, x, y)
    assert torch.equal(result.accuracy, torch.full((5,), clean, dtype=torch.float64))
    summary = accuracy_summary(result.accuracy)
    assert summary["std"] == 0.0
    assert summary["min"] == summary["max"] == summary["mean"] == clean
    assert set(result.correct_counts.tolist()) <= {0, 5}


@pytest.mark.parametrize("training", [True, False])
def test_model_keeps_its_mode_and_state(training):
    model, x, y = case("bn")
    model.train(training)
    model.fc1.eval()  # a mixed state must come back exactly as it was
    modes = {name: m.training for name, m in model.named_modules()}
    before = {k: v.clone() for k, v in model.state_dict().items()}
    noise = create_noise({"name": "relative_gaussian", "zeta": 0.3})
    run_transfers(model, noise, x, y, 3, torch.Generator().manual_seed(0), batch_size=50)
    assert {name: m.training for name, m in model.named_modules()} == modes
    after = model.state_dict()
    assert all(torch.equal(after[k], v) for k, v in before.items())  # BatchNorm stats included


def test_model_keeps_its_mode_when_a_forward_fails():
    model, x, y = case("multiclass")
    model.train()
    noise = create_noise("relative_gaussian")
    with pytest.raises(ValueError, match="x: the model cannot run on inputs"):
        run_transfers(model, noise, x[:, :5], y, 2, torch.Generator())  # wrong input width
    assert all(m.training for m in model.modules())


def test_same_seed_same_result_and_the_generator_moves_on():
    model, x, y = case("multiclass")
    noise = create_noise({"name": "relative_gaussian", "zeta": 0.6})
    a = run_transfers(model, noise, x, y, 6, torch.Generator().manual_seed(9))
    b = run_transfers(model, noise, x, y, 6, torch.Generator().manual_seed(9))
    assert torch.equal(a.accuracy, b.accuracy)
    assert torch.equal(a.correct_counts, b.correct_counts)
    g = torch.Generator().manual_seed(9)
    first = run_transfers(model, noise, x, y, 6, g)
    second = run_transfers(model, noise, x, y, 6, g)  # one base seed drawn per call: new chips
    assert torch.equal(first.accuracy, a.accuracy)
    assert not torch.equal(second.accuracy, a.accuracy)


def test_batch_size_does_not_change_which_chip_is_drawn():
    model, x, y = case("multiclass")
    model.double()
    x = x.double()
    noise = create_noise({"name": "relative_gaussian", "zeta": 0.6})
    whole = run_transfers(model, noise, x, y, 4, torch.Generator().manual_seed(3))
    pieces = run_transfers(model, noise, x, y, 4, torch.Generator().manual_seed(3), batch_size=7)
    assert torch.equal(whole.correct_counts, pieces.correct_counts)


@pytest.mark.parametrize("transfers", [0, -1])
def test_at_least_one_transfer(transfers):
    model, x, y = case("multiclass")
    with pytest.raises(ValueError, match="transfers"):
        run_transfers(model, create_noise("lognormal"), x, y, transfers, torch.Generator())

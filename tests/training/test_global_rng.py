"""The user's own random draws (an nn.Dropout of the model, torch.rand / numpy / `random` in a
forward): the same seed gives the same numbers, and the caller's global random state is left
as it was, by training, Monte Carlo, clean metrics, the attack, the landscape and compensation
training (noiseproof.seeding.global_rng)."""

from __future__ import annotations

import random

import numpy as np
import pytest
import torch
from torch import nn

import noiseproof as nf
from noiseproof.evaluation.clean import clean_metrics
from noiseproof.methods.correctnet.compensation import Compensated
from noiseproof.methods.correctnet.settings import CompensationTraining
from noiseproof.methods.correctnet.training import train_compensation
from noiseproof.seeding import derive_seed, global_rng, seed_global

CONFIG = nf.TrainConfig(epochs=2, batch_size=16, lr=0.05, schedule="constant")


class Jittery(nn.Module):
    """An MLP whose forward draws from every global generator, also in eval mode: torch.rand,
    numpy's and Python's `random`."""

    def __init__(self) -> None:
        super().__init__()
        self.body = nn.Sequential(nn.Linear(2, 16), nn.ReLU(), nn.Linear(16, 2))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        shaken = x + 0.3 * torch.rand(x.shape, dtype=x.dtype, device=x.device)
        scale = float(np.random.uniform(0.9, 1.1)) * random.uniform(0.9, 1.1)
        return self.body(shaken) * scale


def dropping() -> nn.Module:
    """An MLP with its own nn.Dropout (not the dropout method): active in training."""
    return nn.Sequential(nn.Linear(2, 16), nn.ReLU(), nn.Dropout(0.5), nn.Linear(16, 2))


MODELS = {"own_dropout": dropping, "rand_in_forward": Jittery}


def fresh(kind: str, seed: int = 0) -> nn.Module:
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        return MODELS[kind]()


def moons() -> nf.Dataset:
    return nf.load_dataset({"name": "moons", "n_train": 96, "n_val": 32, "n_test": 32})


def global_state() -> tuple:
    """Every global generator's state: torch's CPU one, numpy's, Python's."""
    kind, keys, pos, gauss, cached = np.random.get_state()
    return torch.get_rng_state(), (kind, keys.copy(), pos, gauss, cached), random.getstate()


def assert_same_state(a: tuple, b: tuple) -> None:
    assert torch.equal(a[0], b[0])
    assert a[1][0] == b[1][0] and np.array_equal(a[1][1], b[1][1]) and a[1][2:] == b[1][2:]
    assert a[2] == b[2]


def trained(kind: str, seed: int, caller_seed: int) -> nn.Module:
    seed_global(caller_seed)  # the caller's own global stream must play no part
    model = fresh(kind)
    nf.train(model, moons(), nf.create_method("standard"), CONFIG, seed=seed, progress=False)
    return model


@pytest.mark.parametrize("kind", list(MODELS))
def test_the_same_seed_gives_bit_identical_weights_whatever_the_caller_drew(kind):
    first, second = trained(kind, 3, caller_seed=1), trained(kind, 3, caller_seed=2)
    for (name, a), b in zip(first.state_dict().items(), second.state_dict().values(), strict=True):
        assert torch.equal(a, b), name
    other = trained(kind, 4, caller_seed=1)
    pairs = zip(first.parameters(), other.parameters(), strict=True)
    assert any(not torch.equal(a, b) for a, b in pairs)


@pytest.mark.parametrize("kind", list(MODELS))
def test_training_leaves_every_global_random_state_as_it_was(kind):
    seed_global(11)
    before = global_state()
    nf.train(fresh(kind), moons(), nf.create_method("standard"), CONFIG, progress=False)
    assert_same_state(global_state(), before)


def test_noisy_validation_inside_training_leaves_the_state_alone():
    config = CONFIG.model_copy(update={"select": "noisy", "select_transfers": 3})
    seed_global(5)
    before = global_state()
    noise = nf.create_noise("relative_gaussian")
    nf.train(fresh("rand_in_forward"), moons(), nf.create_method("standard"), config, noise=noise)
    assert_same_state(global_state(), before)


def transfers(model: nn.Module, data: nf.Dataset, count: int = 6, **options):
    """Chips measured as a regression of the inputs themselves: the sums (squared errors) move
    with every draw of the model, where a classifier's counts of right answers might not."""
    noise = nf.create_noise({"name": "relative_gaussian", "zeta": 0.3})
    gen = torch.Generator().manual_seed(7)
    x = data.x_test
    return nf.run_transfers(model, noise, x, x, count, gen, task="regression", **options)


def test_monte_carlo_of_a_drawing_model_is_reproducible_and_chip_by_chip():
    model, data = fresh("rand_in_forward"), moons()
    seed_global(1)
    before = global_state()
    whole = transfers(model, data)
    assert_same_state(global_state(), before)
    assert len(set(whole.sums[:, 0].tolist())) == len(whole.sums)  # every chip its own numbers
    seed_global(2)
    again = transfers(model, data, chunk_size=4)
    assert torch.equal(whole.sums, again.sums)
    tail = transfers(model, data, count=3, first_chip=3)  # chip k is chip k in any shard
    assert torch.equal(whole.sums[3:], tail.sums)


class KeptDropout(nn.Dropout):
    """An nn.Dropout that stays in train mode when its model is put in eval mode (as MC dropout
    does): it draws from torch's global generator in every forward."""

    def train(self, mode: bool = True) -> KeptDropout:
        return super().train(True)


def kept_dropout() -> nn.Module:
    """An MLP whose dropout is left in train mode during evaluation."""
    with torch.random.fork_rng():
        torch.manual_seed(0)
        return nn.Sequential(nn.Linear(2, 64), nn.ReLU(), KeptDropout(0.5), nn.Linear(64, 2))


@pytest.mark.parametrize("build", [kept_dropout, lambda: fresh("rand_in_forward")])
def test_clean_metrics_of_a_drawing_model_are_reproducible_and_leave_the_state_alone(build):
    # a regression of the inputs themselves: its squared error moves with every draw
    model, x = build(), moons().x_test
    task = nf.create_task("regression")
    seed_global(1)
    before = global_state()
    first = clean_metrics(model, x, x, task, seed=3)
    assert_same_state(global_state(), before)
    seed_global(2)  # the caller's own global stream plays no part
    assert clean_metrics(model, x, x, task, seed=3) == first
    assert clean_metrics(model, x, x, task, seed=4)["mse"] != first["mse"]  # the run's seed
    with global_rng(3, "clean"), torch.no_grad():  # the fork of (seed, 'clean') itself
        outputs = model.eval()(x)
    model.train()
    assert first["mse"] == pytest.approx(((outputs - x) ** 2).mean().item(), rel=1e-6)


def test_attack_and_landscape_are_reproducible_and_leave_the_state_alone():
    model, data = fresh("rand_in_forward"), moons()
    x, y = data.x_test, data.y_test
    attack = nf.AttackConfig(zetas=(0.2,), n_steps=2, transfers=2)
    landscape = nf.LandscapeConfig(repeats=1, alphas=(0.5,))
    seed_global(1)
    before = global_state()
    first = (
        nf.targeted_attack(model, x, y, attack, generator=torch.Generator().manual_seed(3)),
        nf.loss_landscape(model, x, y, landscape, generator=torch.Generator().manual_seed(0)),
    )
    assert_same_state(global_state(), before)
    seed_global(2)
    second = (
        nf.targeted_attack(model, x, y, attack, generator=torch.Generator().manual_seed(3)),
        nf.loss_landscape(model, x, y, landscape, generator=torch.Generator().manual_seed(0)),
    )
    for a, b in zip(first[0], second[0], strict=True):
        assert {k: v for k, v in a.items() if k != "seconds"} == {
            k: v for k, v in b.items() if k != "seconds"
        }
    assert first[1] == second[1]


def test_compensation_training_is_reproducible_and_leaves_the_state_alone():
    data = moons()
    noise = nf.create_noise({"name": "relative_gaussian", "zeta": 0.3})
    settings = CompensationTraining(steps=4, eval_every=2, batch_size=16, validation_transfers=2)

    def fit(caller_seed: int) -> dict[str, torch.Tensor]:
        seed_global(caller_seed)
        wrapped = Compensated(fresh("rand_in_forward"), ["body.0"], data.input_shape, seed=0)
        before = global_state()
        train_compensation(wrapped, data, noise, settings, seed=5)
        assert_same_state(global_state(), before)
        return wrapped.comp.state_dict()

    first, second = fit(1), fit(2)
    for name in first:
        assert torch.equal(first[name], second[name]), name


def test_global_rng_seeds_every_generator_and_restores_them_on_error():
    seed_global(0)
    before = global_state()
    with pytest.raises(RuntimeError, match="inside"), global_rng(9, "key"):
        drawn = torch.rand(3), np.random.rand(), random.random()
        raise RuntimeError("inside")
    assert_same_state(global_state(), before)
    seed_global(derive_seed(9, "global", "key"))
    assert torch.equal(torch.rand(3), drawn[0])
    assert np.random.rand() == drawn[1] and random.random() == drawn[2]

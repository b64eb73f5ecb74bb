"""Placement search: exhaustive is the optimum, greedy a baseline, REINFORCE finds the optimum."""

import itertools

import pytest
import torch
from torch import nn

from noiseproof.data.base import Dataset
from noiseproof.errors import NoiseproofError
from noiseproof.methods.correctnet.placement import (
    CachedReward,
    exhaustive_search,
    greedy_search,
    reinforce_search,
)
from noiseproof.methods.correctnet.search import PlacementEvaluator, search
from noiseproof.methods.correctnet.settings import CorrectConfig
from noiseproof.noise import noise_models


def synthetic_reward(mask):
    """Additive gains, a cost per layer, and a pair that only pays off together (greedy trap)."""
    gain = [0.30, 0.02, 0.05, 0.12, 0.01, 0.04]
    cost = [0.05, 0.04, 0.04, 0.06, 0.03, 0.02]
    value = sum(g - c for g, c, m in zip(gain, cost, mask, strict=True) if m)
    if mask[1] and mask[4]:
        value += 0.25
    return value


def brute_force(reward, n):
    return max(itertools.product((False, True), repeat=n), key=reward)


def test_exhaustive_finds_the_optimum_and_counts_every_mask():
    result = exhaustive_search(synthetic_reward, 6)
    assert result.mask == brute_force(synthetic_reward, 6)
    assert result.evaluations == 64
    assert result.reward == pytest.approx(synthetic_reward(result.mask))


def test_greedy_is_a_lower_bound_and_misses_the_interaction():
    best = exhaustive_search(synthetic_reward, 6)
    greedy = greedy_search(synthetic_reward, 6)
    assert greedy.reward <= best.reward
    assert greedy.mask == (True, False, True, True, False, True)  # each pays alone
    assert greedy.reward < best.reward  # layers 1 and 4 only help together
    assert greedy.evaluations <= 1 + 6 * 7 // 2


def test_reinforce_finds_the_exhaustive_optimum_with_fewer_evaluations():
    best = exhaustive_search(synthetic_reward, 6)
    for seed in range(3):
        cached = CachedReward(synthetic_reward)
        result = reinforce_search(
            cached, 6, episodes=48, batch=4, lr=4.0, generator=torch.Generator().manual_seed(seed)
        )
        assert result.mask == best.mask, seed
        assert result.evaluations < 64
        assert len(result.trace) == 48


def random_reward(seed, n_layers):
    """A random placement landscape: per-layer gain and cost, sparse pairwise interactions."""
    gen = torch.Generator().manual_seed(seed)
    gain = torch.randn(n_layers, generator=gen) * 0.05
    cost = torch.rand(n_layers, generator=gen) * 0.05
    sparse = torch.rand(n_layers, n_layers, generator=gen) < 0.2
    pairs = torch.triu(torch.randn(n_layers, n_layers, generator=gen) * 0.03 * sparse, 1)

    def reward(mask):
        m = torch.tensor(mask, dtype=torch.float64)
        return float(((gain - cost).double() * m).sum() + m @ pairs.double() @ m)

    return reward


def test_reinforce_matches_or_beats_greedy_on_random_landscapes():
    at_optimum = 0
    for seed in range(200):
        n_layers = 4 + seed % 8
        reward = random_reward(seed, n_layers)
        greedy = greedy_search(reward, n_layers)
        rl = reinforce_search(reward, n_layers, generator=torch.Generator().manual_seed(seed))
        assert rl.reward >= greedy.reward - 1e-12, seed
        at_optimum += rl.reward >= exhaustive_search(reward, n_layers).reward - 1e-12
    assert at_optimum >= 190


def test_reinforce_without_prior_or_refinement_still_returns_the_best_it_saw():
    cached = CachedReward(synthetic_reward)
    result = reinforce_search(
        cached,
        6,
        prior="uniform",
        refine_answer=False,
        generator=torch.Generator().manual_seed(0),
    )
    assert cached.evaluations == result.evaluations
    assert result.reward == max(cached.cache.values())


def test_reinforce_is_reproducible():
    a = reinforce_search(synthetic_reward, 6, generator=torch.Generator().manual_seed(7))
    b = reinforce_search(synthetic_reward, 6, generator=torch.Generator().manual_seed(7))
    assert a == b


@pytest.mark.parametrize(
    "kwargs",
    [{"episodes": 0}, {"batch": 1}, {"lr": 0.0}, {"lr": float("nan")}, {"prior_scale": -1.0}],
)
def test_reinforce_rejects_bad_settings(kwargs):
    with pytest.raises(NoiseproofError):
        reinforce_search(synthetic_reward, 3, generator=torch.Generator(), **kwargs)


def test_exhaustive_refuses_large_searches():
    with pytest.raises(NoiseproofError, match="1..16"):
        exhaustive_search(synthetic_reward, 17)


def tiny_problem():
    gen = torch.Generator().manual_seed(0)
    n, classes = 600, 4
    y = torch.randint(0, classes, (n,), generator=gen)
    x = torch.randn(classes, 10, generator=gen)[y] + 0.6 * torch.randn(n, 10, generator=gen)
    data = Dataset("blobs", x[:400], y[:400], x[400:500], y[400:500], x[500:], y[500:], classes)
    torch.manual_seed(0)
    model = nn.Sequential(
        nn.Linear(10, 16), nn.ReLU(), nn.Linear(16, 16), nn.ReLU(), nn.Linear(16, classes)
    )
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    for _ in range(150):
        loss = nn.functional.cross_entropy(model(data.x_train), data.y_train)
        opt.zero_grad()
        loss.backward()
        opt.step()
    return model.eval(), data


def test_rl_placement_finds_the_exhaustive_optimum_on_a_tiny_model():
    model, data = tiny_problem()
    noise = noise_models.create({"name": "lognormal", "sigma": 0.8})
    config = CorrectConfig(
        compensation={"rank": 4},
        training={"batch_size": 64, "lr": 1e-2},
        placement={
            "search_steps": 40,
            "search_transfers": 4,
            "cost_weight": 0.05,
            "episodes": 24,
            "batch": 4,
            "rl_lr": 4.0,
        },
    )
    layers = ["0", "2", "4"]
    evaluator = PlacementEvaluator(model, data, noise, config, layers, selection=None, seed=0)
    best = search("exhaustive", evaluator, 3, config.placement, 0)
    rl = search("rl", evaluator, 3, config.placement, 0)
    greedy = search("greedy", evaluator, 3, config.placement, 0)
    assert rl.mask == best.mask
    assert greedy.reward <= best.reward
    rewards = sorted(evaluator.details[m]["reward"] for m in evaluator.details)
    assert rewards[-1] > rewards[0] + 0.02  # the search problem is not flat

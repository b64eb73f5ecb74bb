"""Where to put compensation: REINFORCE policy search, greedy search, exhaustive search.

CorrectNet (Eldebiky et al. 2023) lets reinforcement learning choose the layers that get error
compensation, trading accuracy under variation against the hardware overhead. The paper's
agent is not available to us; ours (our choice) is the simplest policy-gradient agent:

- a placement is a mask m in {0,1}^L over the L candidate layers;
- the policy is L independent Bernoulli variables, p_l = sigmoid(theta_l);
- its start (`prior`): 'uniform' is theta = 0 (every mask equally likely); 'scan' (default)
  first scores each single-layer placement {l} (the agent's observation of each layer, as the
  layer-wise state of AMC/HAQ-style agents) and sets theta_l = prior_scale * g_l / max|g|,
  g_l = R({l}) - R(empty), so layers that help alone start likely and harmful ones unlikely;
- each episode samples m ~ p, gets reward R(m) (the caller's function, e.g. relative accuracy
  under noise minus cost_weight times the overhead), and REINFORCE (Williams 1992) updates
  theta += lr * (R(m) - b) * d log p(m) / d theta = lr * (R(m) - b) * (m - p),
  with b the mean reward of the other episodes of the same batch (leave-one-out baseline) and
  the advantage R(m) - b divided by the spread (std) of every reward seen so far, so `lr` does
  not depend on the reward's units;
- the answer is the best placement seen (every reward is already measured; the empty placement
  and the final policy's most likely mask are always among them), then refined by a local
  search (flip one layer while that raises the reward; `refine_answer`); rewards are cached,
  so the cost is the number of distinct placements evaluated.

On 200 random reward tables (4-11 layers, per-layer gains and costs, sparse pairwise
interactions; tests/correctnet/test_placement.py) this agent with 32 episodes never scored
below greedy and found the exhaustive optimum in 198, for about 30 evaluations against
greedy's 24; started uniform and without the refinement it fell below greedy in 71 of them.

`greedy_search` (add the layer that raises the reward most, stop when none does) is the
baseline RL must match or beat; `exhaustive_search` (all 2^L masks) is the ground truth for
small models.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Literal

import torch

from noiseproof.errors import NoiseproofError

Mask = tuple[bool, ...]


@dataclass
class CachedReward:
    """Memoises a reward function of a mask and counts distinct evaluations."""

    reward: Callable[[Mask], float]
    cache: dict[Mask, float] = field(default_factory=dict)

    def __call__(self, mask: Mask) -> float:
        mask = tuple(bool(m) for m in mask)
        if mask not in self.cache:
            self.cache[mask] = float(self.reward(mask))
        return self.cache[mask]

    @property
    def evaluations(self) -> int:
        return len(self.cache)

    def best(self) -> tuple[Mask, float]:
        """The best mask evaluated so far (ties: fewer layers, then the earlier mask)."""
        mask = max(self.cache, key=lambda m: (self.cache[m], -sum(m)))
        return mask, self.cache[mask]


@dataclass(frozen=True)
class SearchResult:
    """A search's chosen mask, its reward, and how many distinct masks it evaluated."""

    strategy: str
    mask: Mask
    reward: float
    evaluations: int
    trace: tuple[float, ...] = ()  # per-episode rewards (REINFORCE) or per-round best (greedy)

    def layers(self, candidates: list[str]) -> list[str]:
        """Names of the chosen layers."""
        return [name for name, chosen in zip(candidates, self.mask, strict=True) if chosen]


def _cached(reward: Callable[[Mask], float]) -> CachedReward:
    return reward if isinstance(reward, CachedReward) else CachedReward(reward)


def exhaustive_search(reward: Callable[[Mask], float], n_layers: int) -> SearchResult:
    """Evaluate all 2^n_layers masks; the optimum (ties: fewest layers). Refused above 16."""
    if not 1 <= n_layers <= 16:
        raise NoiseproofError(f"exhaustive placement needs 1..16 candidate layers, got {n_layers}")
    cached = _cached(reward)
    for mask in itertools.product((False, True), repeat=n_layers):
        cached(mask)
    mask, value = cached.best()
    return SearchResult("exhaustive", mask, value, cached.evaluations)


def greedy_search(reward: Callable[[Mask], float], n_layers: int) -> SearchResult:
    """Forward selection: from no compensation, add the layer that raises the reward most.

    Stops when no single addition improves the reward (at most L(L+1)/2 + 1 evaluations).
    """
    cached = _cached(reward)
    mask = [False] * n_layers
    best = cached(tuple(mask))
    trace = [best]
    while not all(mask):
        options = []
        for layer in range(n_layers):
            if not mask[layer]:
                trial = list(mask)
                trial[layer] = True
                options.append((cached(tuple(trial)), -layer, layer))
        value, _, layer = max(options)
        if value <= best:
            break
        mask[layer], best = True, value
        trace.append(best)
    return SearchResult("greedy", tuple(mask), best, cached.evaluations, tuple(trace))


def _single(layer: int, n_layers: int) -> Mask:
    return tuple(i == layer for i in range(n_layers))


def _flip(mask: Mask, layer: int) -> Mask:
    return tuple(not chosen if i == layer else chosen for i, chosen in enumerate(mask))


def refine(cached: CachedReward, mask: Mask) -> tuple[Mask, float]:
    """Local search from `mask`: take the best single-layer flip while it raises the reward."""
    value = cached(mask)
    while True:
        flipped = max(
            (_flip(mask, layer) for layer in range(len(mask))),
            key=lambda m: (cached(m), -sum(m)),
        )
        if cached(flipped) <= value:
            return mask, value
        mask, value = flipped, cached(flipped)


def reinforce_search(
    reward: Callable[[Mask], float],
    n_layers: int,
    *,
    episodes: int = 32,
    batch: int = 4,
    lr: float = 1.0,
    prior: Literal["scan", "uniform"] = "scan",
    prior_scale: float = 2.0,
    refine_answer: bool = True,
    generator: torch.Generator,
) -> SearchResult:
    """REINFORCE over independent Bernoulli layer choices (see the module docstring).

    episodes: sampled placements in all; batch: episodes per policy update (>= 2, for the
    leave-one-out baseline); lr: step on the logits per unit of normalised advantage;
    prior, prior_scale: the policy's start ('scan' costs L evaluations besides the episodes);
    refine_answer: finish with a local search (single-layer flips) from the best placement.
    """
    if n_layers < 1 or episodes < 1 or batch < 2 or not lr > 0 or not prior_scale >= 0:
        raise NoiseproofError(
            "reinforce placement needs n_layers >= 1, episodes >= 1, batch >= 2, lr > 0 and "
            "prior_scale >= 0"
        )
    cached = _cached(reward)
    empty = cached((False,) * n_layers)  # "no compensation" is always a known, valid answer
    logits = torch.zeros(n_layers, dtype=torch.float64)  # the policy: on the host on purpose
    if prior == "scan":
        gains = torch.tensor(
            [cached(_single(layer, n_layers)) - empty for layer in range(n_layers)],
            dtype=torch.float64,
        )
        logits = prior_scale * gains / gains.abs().max().clamp_min(1e-12)
    trace: list[float] = []
    for start in range(0, episodes, batch):
        size = min(batch, episodes - start)
        probs = torch.sigmoid(logits)
        shape, where = (size, n_layers), generator.device
        draw = torch.rand(shape, generator=generator, dtype=torch.float64, device=where)
        masks = draw.cpu() < probs  # the policy stays on the host: its masks key the cache
        rewards = torch.tensor([cached(tuple(m.tolist())) for m in masks], dtype=torch.float64)
        trace.extend(rewards.tolist())
        if size < 2:
            continue
        baseline = (rewards.sum() - rewards) / (size - 1)
        spread = torch.tensor(list(cached.cache.values()), dtype=torch.float64).std()
        advantage = (rewards - baseline) / spread.nan_to_num(0.0).clamp_min(1e-12)
        logits += lr * (advantage[:, None] * (masks.double() - probs)).mean(dim=0)
    cached(tuple(bool(p > 0.5) for p in torch.sigmoid(logits)))  # the policy's own answer
    mask, value = cached.best()
    if refine_answer:
        mask, value = refine(cached, mask)
    return SearchResult("rl", mask, value, cached.evaluations, tuple(trace))

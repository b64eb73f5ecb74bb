"""Bootstrap intervals and paired differences against cases whose answer is known: coverage
close to nominal over synthetic repeats, the normal approximation for a large sample, the
variance that pairing removes, and the seeds' share of the uncertainty."""

from __future__ import annotations

import math

import pytest
import torch

from noiseproof.evaluation.statistics import bootstrap_interval, paired_difference

Z95 = 1.959964


def test_coverage_of_the_mean_is_close_to_nominal():
    """400 synthetic runs of 100 chips, N(0.9, 0.05^2): the 95 % interval should hold 0.9 in
    95 % of them; the binomial standard error of 400 runs is 1.1 %, so 3 SE is 3.3 points
    (percentile intervals run slightly short at n = 100: about 94 %)."""
    data = torch.Generator().manual_seed(0)
    boot = torch.Generator().manual_seed(1)
    repeats, hits = 400, 0
    for _ in range(repeats):
        chips = 0.9 + 0.05 * torch.randn(100, generator=data, dtype=torch.float64)
        hits += bootstrap_interval(chips, boot, resamples=1000).contains(0.9)
    se = math.sqrt(0.95 * 0.05 / repeats)
    assert abs(hits / repeats - 0.95) <= 3 * se + 0.01


def test_large_samples_agree_with_the_normal_approximation():
    chips = torch.randn(4000, generator=torch.Generator().manual_seed(2), dtype=torch.float64)
    interval = bootstrap_interval(chips, torch.Generator().manual_seed(3))
    half = Z95 * float(chips.std()) / math.sqrt(len(chips))
    mean = float(chips.mean())
    assert interval.value == pytest.approx(mean)
    assert interval.low == pytest.approx(mean - half, abs=0.1 * half)
    assert interval.high == pytest.approx(mean + half, abs=0.1 * half)


def test_pairing_by_chip_removes_what_the_chips_share():
    """Two methods on the same 200 chips: a chip effect of std 0.05 shared by both, method A
    0.01 better, small own noise (std 0.002). The paired interval holds 0.01 and is much
    narrower than the unpaired spreads, which overlap."""
    gen = torch.Generator().manual_seed(4)
    chip = 0.05 * torch.randn(200, generator=gen, dtype=torch.float64)
    a = 0.91 + chip + 0.002 * torch.randn(200, generator=gen, dtype=torch.float64)
    b = 0.90 + chip + 0.002 * torch.randn(200, generator=gen, dtype=torch.float64)
    paired = paired_difference(a, b, torch.Generator().manual_seed(5))
    assert paired.contains(0.01) and paired.low > 0
    assert paired.high - paired.low < 0.002
    ia = bootstrap_interval(a, torch.Generator().manual_seed(6))
    ib = bootstrap_interval(b, torch.Generator().manual_seed(6))
    assert ia.low < ib.high  # each method's own interval alone cannot tell them apart
    expected = Z95 * math.sqrt(2) * 0.002 / math.sqrt(200)  # sd of the mean difference
    assert (paired.high - paired.low) / 2 == pytest.approx(expected, rel=0.2)


def test_seeds_widen_the_interval_by_their_own_spread():
    """3 seeds whose means differ (std 0.02) with 100 tight chips each: resampling seeds gives
    an interval about as wide as the seeds' spread; chips alone would be far narrower."""
    gen = torch.Generator().manual_seed(7)
    seed_means = torch.tensor([0.88, 0.90, 0.92], dtype=torch.float64)
    values = seed_means[:, None] + 0.001 * torch.randn(3, 100, generator=gen, dtype=torch.float64)
    two_stage = bootstrap_interval(values, torch.Generator().manual_seed(8))
    chips_only = bootstrap_interval(values.reshape(-1), torch.Generator().manual_seed(8))
    assert two_stage.high - two_stage.low > 10 * (chips_only.high - chips_only.low)
    assert two_stage.low < 0.89 and two_stage.high > 0.91


def test_same_generator_same_interval_and_quantile_statistics():
    chips = torch.rand(50, generator=torch.Generator().manual_seed(9), dtype=torch.float64)
    one = bootstrap_interval(chips, torch.Generator().manual_seed(10), statistic="q05")
    two = bootstrap_interval(chips, torch.Generator().manual_seed(10), statistic="q05")
    assert one == two and one.low <= one.value <= one.high
    assert one.value == pytest.approx(float(torch.quantile(chips, 0.05)))


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda g: bootstrap_interval(torch.tensor([]), g), "non-empty"),
        (lambda g: bootstrap_interval(torch.tensor([1.0, float("nan")]), g), "non-finite"),
        (lambda g: bootstrap_interval(torch.ones(3), g, confidence=1.0), "confidence"),
        (lambda g: bootstrap_interval(torch.ones(3), g, statistic="median"), "statistic"),
        (lambda g: paired_difference(torch.ones(3), torch.ones(4), g), "same seeds and chips"),
    ],
)
def test_bad_input_names_the_argument(call, message):
    with pytest.raises(ValueError, match=message):
        call(torch.Generator())

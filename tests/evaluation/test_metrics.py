"""Accuracy statistics and per-example reliability against numpy and exact fractions."""

from __future__ import annotations

import math
from fractions import Fraction

import numpy as np
import pytest
import torch

from noiseproof.evaluation.metrics import (
    accuracy_summary,
    per_example_reliability,
    reliability,
)
from noiseproof.evaluation.transfers import TransferResult
from noiseproof.tasks.classification import Classification


def result_with_counts(counts: list[int], transfers: int) -> TransferResult:
    sums = torch.tensor([[1.0, 2.0]] * transfers, dtype=torch.float64)  # accuracy 0.5 each
    return TransferResult(
        task=Classification(),
        sums=sums,
        correct_counts=torch.tensor(counts, dtype=torch.int64),
    )


@pytest.mark.parametrize("k", [2, 3, 10, 20, 101])
def test_accuracy_summary_matches_numpy(k):
    rng = np.random.default_rng(k)
    accuracy = rng.integers(0, 201, size=k) / 200  # accuracies of a 200-example test set
    summary = accuracy_summary(torch.tensor(accuracy))
    expected = {
        "mean": np.mean(accuracy),
        "std": np.std(accuracy, ddof=1),
        "min": np.min(accuracy),
        "max": np.max(accuracy),
        "q05": np.quantile(accuracy, 0.05, method="linear"),
        "q50": np.quantile(accuracy, 0.5, method="linear"),
        "q95": np.quantile(accuracy, 0.95, method="linear"),
    }
    assert set(summary) == set(expected)
    for key, value in expected.items():
        assert summary[key] == pytest.approx(float(value), rel=1e-12, abs=1e-15), key
        assert isinstance(summary[key], float)


def test_accuracy_summary_of_float32_input_is_computed_in_double():
    accuracy = torch.tensor([0.9, 0.8, 0.7], dtype=torch.float32)
    summary = accuracy_summary(accuracy)
    assert summary["mean"] == pytest.approx(np.mean(accuracy.double().numpy()), rel=1e-15)


def test_accuracy_summary_of_one_transfer():
    summary = accuracy_summary(torch.tensor([0.75], dtype=torch.float64))
    assert summary == {
        "mean": 0.75,
        "std": 0.0,
        "min": 0.75,
        "max": 0.75,
        "q05": 0.75,
        "q50": 0.75,
        "q95": 0.75,
    }


def test_quantiles_interpolate_between_order_statistics():
    # positions (k-1) * q on [0, 0.1, 0.2, 0.3, 1.0]: 0.2 -> 0.02, 2 -> 0.2, 3.8 -> 0.86
    summary = accuracy_summary(torch.tensor([0.3, 0.0, 1.0, 0.1, 0.2], dtype=torch.float64))
    assert summary["q05"] == pytest.approx(0.02)
    assert summary["q50"] == pytest.approx(0.2)
    assert summary["q95"] == pytest.approx(0.86)


def test_per_example_reliability_is_the_fraction_of_transfers():
    result = result_with_counts([0, 3, 7, 8], transfers=8)
    assert torch.equal(
        per_example_reliability(result), torch.tensor([0, 3 / 8, 7 / 8, 1], dtype=torch.float64)
    )


def test_exactly_95_of_100_counts_as_reliable():
    result = result_with_counts([95, 94, 100, 0, 96], transfers=100)
    assert reliability(result) == {"threshold": 0.95, "share": 3 / 5}
    assert reliability(result, 1.0)["share"] == 1 / 5
    assert reliability(result, 0.94)["share"] == 4 / 5


@pytest.mark.parametrize("threshold", ["0.95", "0.9", "0.99", "0.5", "0.7", "1"])
def test_reliability_agrees_with_exact_fractions_for_every_count(threshold):
    cut = Fraction(threshold)
    for transfers in range(1, 121):
        counts = list(range(transfers + 1))
        share = reliability(result_with_counts(counts, transfers), float(threshold))["share"]
        reliable = sum(Fraction(c, transfers) >= cut for c in counts)
        assert share == reliable / len(counts), (transfers, threshold)


@pytest.mark.parametrize("threshold", [0.0, -0.5, 1.0001, 2.0, math.nan])
def test_reliability_threshold_is_validated(threshold):
    with pytest.raises(ValueError, match="threshold"):
        reliability(result_with_counts([1], transfers=1), threshold)

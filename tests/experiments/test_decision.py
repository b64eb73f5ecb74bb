"""Which method to deploy: chip-paired comparisons, the Pareto front and `recommend`, on
records whose answer is known, and `noiseproof recommend` on a real run."""

from __future__ import annotations

import pytest
import torch
from click.testing import CliRunner

from noiseproof.cli import cli
from noiseproof.errors import NoiseproofError
from noiseproof.experiments.decision import comparisons, pareto, pareto_front, recommend


def record(method: str, values: torch.Tensor, seed: int = 0, level: float = 0.5) -> dict:
    mean = float(values.mean())
    return {
        "method": method,
        "noise": "relative_gaussian",
        "level": level,
        "seed": seed,
        "transfers": len(values),
        "metrics": {
            "accuracy": {
                "mean": mean,
                "std": float(values.std()),
                "min": float(values.min()),
                "worst": float(values.min()),
                "max": float(values.max()),
                "higher_is_better": True,
            }
        },
        "per_chip": {"accuracy": values.tolist()},
        "clean": {"accuracy": 0.95},
    }


def run(effects: dict[str, float], flops: dict[str, float], own: float = 0.002) -> dict:
    """Methods on 200 shared chips (chip effect std 0.05), each `effects` better than 0.9."""
    gen = torch.Generator().manual_seed(0)
    chip = 0.05 * torch.randn(200, generator=gen, dtype=torch.float64)
    jobs = [
        record(m, 0.9 + e + chip + own * torch.randn(200, generator=gen, dtype=torch.float64))
        for m, e in effects.items()
    ]
    trainings = [
        {"method": m, "seed": 0, "cost": {"flops": f, "seconds": 1.0}} for m, f in flops.items()
    ]
    return {"jobs": jobs, "trainings": trainings}


def test_the_cheapest_indistinguishable_method_is_recommended():
    results = run(
        {"standard": 0.0, "cheap": 0.02, "costly": 0.0201}, {"standard": 1, "cheap": 1, "costly": 5}
    )
    decided = recommend(results, "relative_gaussian", 0.5)
    assert decided["comparison"]["best"] == "costly"
    rows = {r["method"]: r for r in decided["comparison"]["methods"]}
    assert rows["cheap"]["indistinguishable"] and not rows["standard"]["indistinguishable"]
    assert decided["method"] == "cheap"
    assert decided["lines"][-2].startswith("recommend: cheap (indistinguishable from the best")
    assert "cannot tell cheap from costly" in decided["lines"][-1]


def test_within_and_the_training_cost_limit():
    results = run({"standard": 0.0, "robust": 0.03}, {"standard": 1, "robust": 4})
    assert recommend(results, "relative_gaussian", 0.5)["method"] == "robust"
    assert recommend(results, "relative_gaussian", 0.5, within=0.05)["method"] == "standard"
    capped = recommend(results, "relative_gaussian", 0.5, max_train_cost=2)
    assert capped["method"] is None and "no method fits" in capped["lines"][-1]
    worst = recommend(results, "relative_gaussian", 0.5, by="worst")
    assert worst["method"] == "robust" and worst["comparison"]["by"] == "worst"


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"noise": "pcm"}, "--noise 'pcm' is not in this run"),
        ({"level": 0.7}, "--level 0.7 is not in this run"),
        ({"within": -1.0}, "--within must be >= 0"),
        ({"confidence": 1.5}, "confidence must be in"),
    ],
)
def test_bad_input_is_one_line(kwargs, message):
    results = run({"a": 0.0, "b": 0.01}, {"a": 1, "b": 1})
    args = {"noise": "relative_gaussian", "level": 0.5, **kwargs}
    noise, level = args.pop("noise"), args.pop("level")
    with pytest.raises(NoiseproofError, match=message):
        recommend(results, noise, level, **args)


def test_pareto_front_by_hand():
    points = [("a", 0.9, 1.0), ("b", 0.95, 3.0), ("c", 0.85, 2.0), ("d", 0.95, 4.0)]
    assert pareto_front(points, higher=True) == ["a", "b"]  # c: a is better and cheaper
    assert pareto_front([("x", 2.0, 1.0), ("y", 1.0, 2.0)], higher=False) == ["x", "y"]
    results = run({"a": 0.0, "b": 0.03}, {"a": 1, "b": 4})
    front = pareto(comparisons(results["jobs"], results["trainings"]))[0]
    assert front["robust_vs_train_cost"] == ["a", "b"] and front["metric"] == "accuracy"


def test_recommend_command_on_a_real_run(tmp_path):
    out = tmp_path / "run"
    args = [
        "compare",
        "--dataset",
        "moons",
        "--model",
        "mlp",
        "--methods",
        "standard,noise_injection",
    ]
    args += ["--levels", "0,0.5", "--transfers", "20", "--epochs", "2", "--out", str(out)]
    assert CliRunner().invoke(cli, args).exit_code == 0
    result = CliRunner().invoke(
        cli, ["recommend", str(out), "--noise", "relative_gaussian", "--level", "0.5"]
    )
    assert result.exit_code == 0, result.output
    assert "recommend: " in result.output and "FLOPs" in result.output
    missing = CliRunner().invoke(cli, ["recommend", str(tmp_path), "--noise", "x", "--level", "0"])
    assert missing.exit_code == 2 and "not a finished compare run" in missing.output

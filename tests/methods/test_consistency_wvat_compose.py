"""consistency and wvat with the rest: every model, chip selection rules, noise models, compare."""

from __future__ import annotations

import json

import pytest
import torch

from noiseproof.chip import ChipSelection, chip_params
from noiseproof.config import ExperimentConfig
from noiseproof.experiments.compare import run_compare
from noiseproof.methods import create_method
from noiseproof.methods.base import StepContext
from noiseproof.models import build_model, models
from noiseproof.noise import create_noise

FEATURE_MODELS = [n for n in models.names() if models.get(n).reads == "features"]
"""The models that read real-valued features (token models have tests of their own)."""

NOISE = create_noise({"name": "additive_gaussian", "eta": 0.2})
METHODS = [
    {"name": "consistency"},
    {"name": "consistency", "distance": "cosine", "detach_clean": False},
    {"name": "consistency", "distance": "kl"},
    {"name": "wvat", "p": 0.0},
    {"name": "wvat", "p": 1.0},
]


@pytest.mark.parametrize("model_name", FEATURE_MODELS)
def test_every_model_trains_a_step_with_both_methods(model_name):
    torch.manual_seed(0)
    model = build_model(model_name, (1, 16, 16), 10).train()
    gen = torch.Generator().manual_seed(0)
    x, y = torch.randn(4, 1, 16, 16, generator=gen), torch.randint(0, 10, (4,), generator=gen)
    ctx = StepContext(model, chip_params(model), NOISE, gen)
    for spec in METHODS:
        terms = create_method(spec).terms(ctx, x, y)
        torch.stack(list(terms.values())).sum().backward()
        assert all(p.grad is not None for p in ctx.params.values()), spec
        model.zero_grad(set_to_none=True)


@pytest.mark.parametrize("model_name", FEATURE_MODELS)
def test_at_zero_noise_both_methods_reduce_to_the_clean_loss(model_name):
    """eta = 0: every chip is the network itself, so consistency's task term is the clean loss
    and its distance 0 (up to float32 rounding of a cosine: 1e-6), wvat's noisy branch (p=1)
    is the clean loss, and its adversarial branch (p=0) raises it."""
    torch.manual_seed(0)
    model = build_model(model_name, (1, 16, 16), 10).eval()  # no dropout or batch statistics
    gen = torch.Generator().manual_seed(0)
    x, y = torch.randn(4, 1, 16, 16, generator=gen), torch.randint(0, 10, (4,), generator=gen)
    with torch.no_grad():
        clean = float(torch.nn.functional.cross_entropy(model(x), y))
    zero = create_noise({"name": "additive_gaussian", "eta": 0.0})
    ctx = StepContext(model, chip_params(model), zero, gen)
    for spec in METHODS:
        terms = {k: float(v.detach()) for k, v in create_method(spec).terms(ctx, x, y).items()}
        if spec == {"name": "wvat", "p": 0.0}:
            assert terms["task"] > clean, spec
            continue
        assert terms["task"] == pytest.approx(clean, rel=1e-6), spec
        assert terms.get("consistency", 0.0) == pytest.approx(0.0, abs=1e-6), spec


def test_off_chip_parameters_are_never_perturbed():
    """With only weights on the chip, biases enter every forward as they are."""
    torch.manual_seed(0)
    model = build_model({"name": "mlp", "hidden": [8]}, (1, 8, 8), 3).train()
    selection = ChipSelection(kinds=("weight",))
    gen = torch.Generator().manual_seed(0)
    x, y = torch.randn(6, 1, 8, 8, generator=gen), torch.randint(0, 3, (6,), generator=gen)
    ctx = StepContext(model, chip_params(model, selection), NOISE, gen)
    seen = []
    model[1].register_forward_pre_hook(lambda m, i: seen.append(m.bias.detach().clone()))
    for spec in METHODS:
        create_method(spec).terms(ctx, x, y)
    assert seen and all(torch.equal(b, model[1].bias.detach()) for b in seen)


def test_other_noise_models_drive_both_methods():
    torch.manual_seed(0)
    model = build_model({"name": "mlp", "hidden": [8]}, (1, 8, 8), 3).train()
    gen = torch.Generator().manual_seed(0)
    x, y = torch.randn(6, 1, 8, 8, generator=gen), torch.randint(0, 3, (6,), generator=gen)
    ctx = StepContext(model, chip_params(model), create_noise("relative_gaussian"), gen)
    assert float(create_method("consistency").terms(ctx, x, y)["consistency"].detach()) > 0
    with torch.no_grad():
        clean = float(torch.nn.functional.cross_entropy(model(x), y))
    noisy = create_method({"name": "wvat", "p": 1.0}).terms(ctx, x, y)["task"]  # a drawn chip
    assert float(noisy.detach()) != pytest.approx(clean, rel=1e-6)


def test_compare_grid_with_both_methods(tmp_path):
    config = ExperimentConfig.parse(
        {
            "dataset": {"name": "digits"},
            "model": {"name": "mlp", "hidden": [16]},
            "methods": [
                "noise_injection",
                {"name": "consistency", "lam": 0.5},
                {"name": "wvat", "label": "wvat-p0", "p": 0.0},
            ],
            "noise": [{"name": "additive_gaussian", "eta": 0.2}],
            "levels": [0.0, 0.2],
            "transfers": 3,
            "seeds": [0],
            "train": {"epochs": 1, "batch_size": 64},
        }
    )
    results = run_compare(config, tmp_path / "run", progress=False, log=lambda _: None)
    methods = {job["method"] for job in results["jobs"]}
    assert methods == {"noise_injection", "consistency", "wvat-p0"}
    assert len(results["jobs"]) == 6
    consistency = next(t for t in results["trainings"] if t["method"] == "consistency")
    assert {"task", "consistency", "loss"} <= set(consistency["history"][0])
    saved = json.loads((tmp_path / "run" / "results.json").read_text())
    assert saved["config"]["methods"][2] == {
        "name": "wvat", "label": "wvat-p0", "p": 0.0, "rho": 0.1, "ascent": "layer",
        "noise": None, "level": None,
    }  # fmt: skip
    assert (tmp_path / "run" / "report.md").read_text().count("wvat-p0") >= 1
    # the saved config round-trips (what --resume relies on)
    again = ExperimentConfig.parse(saved["config"])
    assert again.to_dict() == saved["config"]

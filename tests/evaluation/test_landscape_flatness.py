"""Loss landscape along random relative directions, flatness, and the compare integration."""

from __future__ import annotations

import json

import pytest
import torch
from click.testing import CliRunner

from helpers import MINIMAL_EXPERIMENT
from noiseproof.chip import chip_params
from noiseproof.cli import cli
from noiseproof.config import ExperimentConfig
from noiseproof.data.base import Dataset
from noiseproof.errors import NoiseproofError
from noiseproof.evaluation.landscape import LandscapeConfig, loss_landscape, random_direction
from noiseproof.experiments.compare import run_compare
from noiseproof.models import build_model


def blobs(n: int = 200, seed: int = 0) -> Dataset:
    gen = torch.Generator().manual_seed(seed)
    y = torch.randint(0, 3, (n,), generator=gen)
    x = torch.randn(n, 5, generator=gen) + 2.0 * torch.eye(3, 5)[y]
    return Dataset("blobs", x, y, x[:20], y[:20], x, y, 3)


def test_direction_statistics():
    theta = {"w": torch.full((200, 100), -2.0), "b": torch.full((20000,), 0.5)}
    v = random_direction(theta, 0.2, torch.Generator().manual_seed(0))
    # v / (0.2 |theta|) ~ N(0, 1): 20,000 draws, std of the sample std ~ 0.005
    for name, t in theta.items():
        z = v[name] / (0.2 * t.abs())
        assert abs(float(z.mean())) < 5 * (1 / 20000**0.5)
        assert abs(float(z.std()) - 1) < 5 * (1 / (2 * 20000) ** 0.5)


def test_landscape_shapes_centre_and_flatness():
    data = blobs()
    torch.manual_seed(0)
    model = build_model({"name": "mlp", "hidden": [16]}, data.input_shape, 3)
    config = LandscapeConfig(alphas=(-2, -0.5, 0.5, 2), repeats=3, examples=150)
    result = loss_landscape(
        model, data.x_test, data.y_test, config, generator=torch.Generator().manual_seed(1)
    )
    assert result["alphas"] == [-2.0, -1.0, -0.5, 0.0, 0.5, 1.0, 2.0]
    assert len(result["loss"]) == 3 and all(len(row) == 7 for row in result["loss"])
    centre = [row[3] for row in result["loss"]]
    assert max(centre) == min(centre) == result["clean_loss"]
    rises = [(row[5] + row[1]) / 2 - row[3] for row in result["loss"]]
    assert result["flatness"] == pytest.approx(sum(rises) / 3)
    assert result["examples"] == 150
    again = loss_landscape(
        model, data.x_test, data.y_test, config, generator=torch.Generator().manual_seed(1)
    )
    assert again["loss"] == result["loss"]
    other = loss_landscape(
        model, data.x_test, data.y_test, config, generator=torch.Generator().manual_seed(2)
    )
    assert other["loss"] != result["loss"]


def test_the_landscape_takes_an_explicit_generator():
    data = blobs()
    model = build_model({"name": "mlp", "hidden": [4]}, data.input_shape, 3)
    with pytest.raises(TypeError, match="generator must be a torch.Generator"):
        loss_landscape(model, data.x_test, data.y_test, generator=1)


def test_a_sharper_network_scores_less_flat():
    """Scaling the last layer up by 5 multiplies the logits: the same relative directions now
    move the loss more, so flatness (mean loss rise) must grow."""
    data = blobs()
    torch.manual_seed(0)
    model = build_model({"name": "mlp", "hidden": [16]}, data.input_shape, 3)
    params = {k: v.detach() for k, v in chip_params(model).items()}
    sharp = {
        k: (5 * v if k.startswith(list(params)[-1].split(".")[0]) else v) for k, v in params.items()
    }
    config = LandscapeConfig(repeats=4)
    flat, steep = (
        loss_landscape(
            model,
            data.x_test,
            data.y_test,
            config,
            params=point,
            generator=torch.Generator().manual_seed(0),
        )["flatness"]
        for point in (params, sharp)
    )
    assert steep > flat


@pytest.mark.parametrize(
    "raw, field",
    [({"scale": 0}, "scale"), ({"repeats": 0}, "repeats"), ({"alphas": ["x"]}, "alphas")],
)
def test_bad_landscape_config_is_one_line(raw, field):
    with pytest.raises(NoiseproofError) as error:
        ExperimentConfig.parse({**MINIMAL_EXPERIMENT, "landscape": raw})
    assert "\n" not in str(error.value) and field in str(error.value)


def test_compare_adds_attacks_and_flatness_and_landscape_command(tmp_path):
    raw = {
        "dataset": {"name": "digits", "max_train": 300, "max_test": 100},
        "model": {"name": "mlp", "hidden": [16]},
        "methods": ["standard", {"name": "adversarial", "n_steps": 2, "label": "adv"}],
        "noise": ["relative_gaussian"],
        "levels": [0.2],
        "transfers": 2,
        "train": {"epochs": 1, "batch_size": 100},
        "attack": {"zetas": [0.1], "n_steps": 2, "transfers": 2},
        "landscape": {"repeats": 2, "alphas": [-1, 1], "examples": 50},
    }
    config = ExperimentConfig.parse(raw)
    assert ExperimentConfig.parse(config.to_dict()).to_dict() == config.to_dict()
    out = tmp_path / "run"
    results = run_compare(config, out, progress=False, log=lambda _: None)
    assert [a["method"] for a in results["attacks"]] == ["standard", "adv"]
    assert set(results["flatness"]) == {"standard", "adv"}
    saved = json.loads((out / "results.json").read_text())
    assert saved["flatness"] == results["flatness"]
    assert "Targeted parameter attack" in (out / "report.md").read_text()
    assert "Loss landscape" in (out / "report.html").read_text()
    assert (out / "attack.png").is_file() and (out / "landscape.png").is_file()
    resumed = run_compare(config, out, resume=True, progress=False, log=lambda _: None)
    assert resumed["attacks"] == json.loads(json.dumps(results["attacks"]))

    ckpts = sorted(str(p) for p in (out / "checkpoints").glob("*.pt"))
    land = tmp_path / "land"
    result = CliRunner().invoke(
        cli,
        [
            "landscape",
            *ckpts,
            "--repeats",
            "2",
            "--alphas",
            "-1,0,1",
            "--examples",
            "40",
            "--out",
            str(land),
        ],
    )
    assert result.exit_code == 0, result.output
    saved = json.loads((land / "landscape.json").read_text())
    assert set(saved["flatness"]) == {"standard", "adv"}
    assert (land / "landscape.png").stat().st_size > 0

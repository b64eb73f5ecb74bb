"""Targeted parameter attack at inference (Buechel et al. 2022) and its `attack` command."""

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
from noiseproof.evaluation.attack import AttackConfig, attack_parameters, targeted_attack
from noiseproof.experiments.jobs import train_job
from noiseproof.methods import create_method
from noiseproof.models import models
from noiseproof.training.checkpoints import save_checkpoint
from noiseproof.training.config import TrainConfig


def blobs(n: int = 400, seed: int = 0) -> Dataset:
    gen = torch.Generator().manual_seed(seed)
    y = torch.randint(0, 4, (n,), generator=gen)
    x = torch.randn(n, 8, generator=gen) + 4.0 * torch.eye(4, 8)[y]
    return Dataset("blobs", x[:300], y[:300], x[300:340], y[300:340], x[300:], y[300:], 4)


@pytest.fixture(scope="module")
def trained():
    data = blobs()
    from noiseproof.chip import ChipSelection

    model, meta = train_job(
        models.create({"name": "mlp", "hidden": [32]}),
        data,
        create_method("standard"),
        TrainConfig(epochs=15, batch_size=50),
        noise=None,
        selection=ChipSelection(),
        seed=0,
        progress=False,
    )
    return model, meta, data


def test_attack_stays_in_its_box(trained):
    model, _, data = trained
    params = {k: v.detach() for k, v in chip_params(model).items()}
    for zeta in (0.01, 0.1, 0.5):
        star = attack_parameters(
            model, params, data.x_test, data.y_test, zeta, torch.Generator(), initial_std=1.0
        )
        for name, t in params.items():
            excess = (star[name] - t).abs() - zeta * t.abs()
            assert float(excess.max()) <= 1e-6 * float(t.abs().max()), (zeta, name)


def test_attack_in_chunks_equals_the_attack_in_one_batch(trained):
    model, _, data = trained
    params = {k: v.detach() for k, v in chip_params(model).items()}
    whole, chunked = (
        attack_parameters(
            model,
            params,
            data.x_test,
            data.y_test,
            0.1,
            torch.Generator().manual_seed(0),
            batch_size=size,
        )
        for size in (1000, 7)
    )
    for name in params:  # same ascent directions up to float summation order
        assert torch.allclose(whole[name], chunked[name], atol=1e-6), name


def test_targeted_accuracy_is_below_random_mismatch_of_the_same_budget(trained):
    model, _, data = trained
    config = AttackConfig(zetas=(0.05, 0.2, 0.5), transfers=20)
    records = targeted_attack(
        model, data.x_test, data.y_test, config, generator=torch.Generator().manual_seed(0)
    )
    assert records[0]["clean_accuracy"] > 0.85
    for record in records:
        # 20 random chips: the attacked chip must lie below their mean (and at most their min)
        assert record["attacked_accuracy"] <= record["random_accuracy"]["min"]
        assert record["attacked_loss"] > record["clean_loss"]
    accuracies = [r["attacked_accuracy"] for r in records]
    assert accuracies == sorted(accuracies, reverse=True)
    assert records[-1]["attacked_accuracy"] < 0.5 * records[-1]["clean_accuracy"]


def test_attack_is_reproducible_and_leaves_the_model_alone(trained):
    model, _, data = trained
    state = {k: v.clone() for k, v in model.state_dict().items()}
    config = AttackConfig(zetas=(0.1,), transfers=2, examples=30)
    first = targeted_attack(
        model, data.x_test, data.y_test, config, generator=torch.Generator().manual_seed(4)
    )
    second = targeted_attack(
        model, data.x_test, data.y_test, config, generator=torch.Generator().manual_seed(4)
    )
    for a, b in zip(first, second, strict=True):
        assert {k: v for k, v in a.items() if k != "seconds"} == {
            k: v for k, v in b.items() if k != "seconds"
        }
    assert first[0]["examples"] == 30
    assert all(torch.equal(v, model.state_dict()[k]) for k, v in state.items())


def test_the_attack_takes_an_explicit_generator(trained):
    model, _, data = trained
    with pytest.raises(TypeError, match="generator must be a torch.Generator"):
        targeted_attack(model, data.x_test, data.y_test, generator=0)


@pytest.mark.parametrize(
    "raw, field",
    [({"zetas": [-0.1]}, "zetas"), ({"zetas": []}, "zetas"), ({"n_steps": 0}, "n_steps")],
)
def test_bad_attack_config_is_one_line(raw, field):
    with pytest.raises(NoiseproofError) as error:
        ExperimentConfig.parse({**MINIMAL_EXPERIMENT, "attack": raw})
    assert "\n" not in str(error.value) and field in str(error.value)


def test_attack_command_writes_results(trained, tmp_path):
    model, meta, data = trained
    ckpt = tmp_path / "m.pt"
    meta = {**meta, "label": "std", "dataset": "digits"}
    # evaluate on digits-shaped data is impossible for a blobs model: use a digits model instead
    digits_model = models.create({"name": "mlp", "hidden": [8]}).build((1, 8, 8), 10)
    meta.update(input_shape=[1, 8, 8], num_outputs=10, model={"name": "mlp", "hidden": [8]})
    save_checkpoint(ckpt, digits_model.state_dict(), meta)
    out = tmp_path / "out"
    result = CliRunner().invoke(
        cli,
        [
            "attack",
            str(ckpt),
            "--zetas",
            "0.1,0.3",
            "--steps",
            "2",
            "--transfers",
            "2",
            "--max-test",
            "50",
            "--out",
            str(out),
        ],
    )
    assert result.exit_code == 0, result.output
    saved = json.loads((out / "attack.json").read_text())
    assert [r["zeta"] for r in saved["attacks"]] == [0.1, 0.3]
    assert (out / "attack.png").stat().st_size > 0
    assert (out / "attack.csv").read_text().startswith("method,seed,zeta")
    bad = CliRunner().invoke(cli, ["attack", str(ckpt), "--zetas", "0,x"])
    assert bad.exit_code == 2 and "--zetas" in bad.output
    bad = CliRunner().invoke(cli, ["attack", str(ckpt), "--steps", "0"])
    assert bad.exit_code == 2 and "n_steps" in bad.output

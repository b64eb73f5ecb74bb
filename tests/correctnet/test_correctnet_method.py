"""The `correctnet` method: both CorrectNet stages inside `noiseproof compare`."""

from __future__ import annotations

import json

import pytest
import torch
import yaml
from click.testing import CliRunner

from noiseproof.chip import ChipSelection, chip_params
from noiseproof.cli import cli
from noiseproof.data import datasets
from noiseproof.errors import NoiseproofError
from noiseproof.experiments.jobs import train_job
from noiseproof.flops import flop_counter
from noiseproof.methods import methods
from noiseproof.methods.correctnet.compensation import Compensated
from noiseproof.models import models
from noiseproof.noise import noise_models
from noiseproof.restore import model_from_checkpoint
from noiseproof.training.checkpoints import load_checkpoint
from noiseproof.training.config import TrainConfig

CORRECTNET = {
    "name": "correctnet",
    "base": {"name": "lipschitz", "weight": 0.01, "target": 2.0},
    "level": 0.6,
    "strategy": "greedy",
    "correct": {
        "training": {"steps": 20, "batch_size": 64, "eval_every": 10},
        "placement": {"search_steps": 5, "search_transfers": 2, "val_examples": 100},
    },
}
CONFIG = {
    "dataset": {"name": "digits"},
    "model": {"name": "mlp", "hidden": [32]},
    "methods": ["standard", CORRECTNET],
    "noise": ["lognormal"],
    "levels": [0.0, 0.6],
    "transfers": 3,
    "seeds": [0],
    "train": {"epochs": 2, "batch_size": 64},
}


def run(tmp_path, *extra):
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(CONFIG))
    out = tmp_path / "run"
    result = CliRunner().invoke(
        cli, ["compare", "--config", str(path), "--out", str(out), "--no-progress", *extra]
    )
    assert result.exit_code == 0, result.output
    return out, result.output


def test_compare_runs_correctnet_and_resumes_to_the_same_numbers(tmp_path):
    out, output = run(tmp_path)
    assert "correctnet: compensation after" in output
    results = json.loads((out / "results.json").read_text())
    jobs = {(j["method"], j["level"]): j for j in results["jobs"]}
    assert set(jobs) == {(m, lv) for m in ("standard", "correctnet") for lv in (0.0, 0.6)}
    # zero noise: the compensated network's accuracy is its own noise-free accuracy
    zero = jobs[("correctnet", 0.0)]
    assert zero["accuracy"]["mean"] == pytest.approx(zero["clean_accuracy"])

    state, meta = load_checkpoint(out / "checkpoints" / "correctnet-seed0.pt")
    assert meta["finish"]["strategy"] == "greedy"
    assert jobs[("correctnet", 0.6)]["training"]["finish"]["overhead"]["params_percent"] >= 0
    assert "compensation" not in meta  # the method rebuilds its model from its own record
    model = model_from_checkpoint(state, meta)
    assert isinstance(model, Compensated) and model.layers == meta["finish"]["layers"]
    # the compensation is digital: never among the parameters a chip perturbs
    assert not any(name.startswith("comp.") for name in chip_params(model, ChipSelection()))

    (out / "results.json").unlink()
    for job in (out / "jobs").glob("correctnet__*"):
        job.unlink()
    _, resumed_output = run(tmp_path, "--resume")
    assert "trained" not in resumed_output
    resumed = json.loads((out / "results.json").read_text())["jobs"]
    for job in resumed:
        reference = jobs[(job["method"], job["level"])]
        assert job["accuracy"] == reference["accuracy"]


def test_stage_one_is_exactly_the_base_method_and_given_layers_skip_the_search():
    data = datasets.create("digits").load()
    spec = {**CORRECTNET, "layers": ["3"], "base": "standard"}
    method = methods.create(spec)
    assert methods.create(method.spec()) == method  # the spec round-trips
    common = dict(noise=noise_models.create("lognormal"), selection=ChipSelection(), seed=0)
    train = TrainConfig(epochs=1, batch_size=64)
    mlp = models.create({"name": "mlp", "hidden": [32]})
    plain, plain_meta = train_job(
        mlp, data, methods.create("standard"), train, progress=False, **common
    )
    wrapped, meta = train_job(mlp, data, method, train, progress=False, **common)
    assert isinstance(wrapped, Compensated) and wrapped.layers == ["3"]
    assert meta["finish"]["strategy"] == "given" and "evaluations" not in meta["finish"]
    for name, tensor in plain.state_dict().items():
        assert torch.equal(wrapped.state_dict()[f"base.{name}"], tensor), name
    # the second stage's cost is part of the training's: at least the forwards of its 20
    # compensation steps of 64 examples through the base network (torch's counter on one)
    stage, cost = meta["cost"]["finish"], meta["cost"]
    with flop_counter() as counter:
        plain(data.x_test[:1])
    assert stage["flops"] >= 20 * 64 * counter.get_total_flops() > 0
    assert cost["flops"] == plain_meta["cost"]["flops"] + stage["flops"]
    assert cost["seconds"] > stage["seconds"] > 0
    assert "finish" not in plain_meta["cost"]


@pytest.mark.parametrize(
    "change, message",
    [
        ({"base": "annealing"}, "unknown method 'annealing'"),
        ({"strategy": "random"}, "strategy"),
        ({"level": -1.0}, "level"),
        ({"correct": {"placement": {"episodes": 0}}}, "episodes"),
    ],
)
def test_bad_settings_name_the_problem(change, message):
    with pytest.raises(NoiseproofError, match=message):
        methods.create({**CORRECTNET, **change})


def test_unknown_layer_is_refused_after_training(tmp_path):
    bad = {**CORRECTNET, "layers": ["nope"]}
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump({**CONFIG, "methods": [bad]}))
    result = CliRunner().invoke(
        cli, ["compare", "--config", str(path), "--out", str(tmp_path / "x"), "--no-progress"]
    )
    assert result.exit_code == 2
    assert "no layer named 'nope'" in result.output


def test_compensated_checkpoint_from_correct_evaluates(tmp_path):
    """`noiseproof correct` writes compensated checkpoints that `evaluate` loads as they are."""
    config = {
        **CONFIG,
        "methods": [CORRECTNET["base"]],
        "levels": [0.6],
        "correct": CORRECTNET["correct"],
    }
    path = tmp_path / "correct.yaml"
    path.write_text(yaml.safe_dump(config))
    out = tmp_path / "c"
    runner = CliRunner()
    args = ["correct", "--config", str(path), "--out", str(out), "--no-progress"]
    assert runner.invoke(cli, [*args, "--layers", "3"]).exit_code == 0
    state, meta = load_checkpoint(out / "compensated-given.pt")
    model = model_from_checkpoint(state, meta)
    assert isinstance(model, Compensated) and model.layers == ["3"]
    assert torch.equal(model.state_dict()["comp.3.up.weight"], state["comp.3.up.weight"])
    result = runner.invoke(
        cli,
        [
            "evaluate",
            str(out / "compensated-given.pt"),
            "--noise",
            "lognormal",
            "--levels",
            "0.6",
            "--transfers",
            "2",
            "--out",
            str(tmp_path / "e"),
            "--no-progress",
        ],
    )
    assert result.exit_code == 0, result.output
    again = runner.invoke(
        cli,
        [
            *args[:-3],
            "--out",
            str(tmp_path / "f"),
            "--no-progress",
            "--checkpoint",
            str(out / "compensated-given.pt"),
        ],
    )
    assert again.exit_code == 2 and "already compensated" in again.output

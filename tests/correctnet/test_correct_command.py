"""`noiseproof correct` end to end on a tiny problem, and its one-line errors."""

import json

import pytest
import torch
import yaml
from click.testing import CliRunner

from noiseproof.cli import cli
from noiseproof.methods.correctnet.compensation import Compensated
from noiseproof.restore import model_from_checkpoint
from noiseproof.training.checkpoints import load_checkpoint

CONFIG = {
    "dataset": {"name": "digits"},
    "model": {"name": "mlp", "hidden": [32]},
    "methods": [{"name": "lipschitz", "weight": 0.01, "target": 2.0}],
    "noise": ["lognormal"],
    "levels": [0.6],
    "transfers": 3,
    "train": {"epochs": 2, "batch_size": 64},
    "correct": {
        "training": {"steps": 20, "batch_size": 64},
        "placement": {
            "strategies": ["greedy"],
            "search_steps": 5,
            "search_transfers": 2,
            "val_examples": 100,
        },
    },
}


@pytest.fixture()
def config_file(tmp_path):
    path = tmp_path / "correct.yaml"
    path.write_text(yaml.safe_dump(CONFIG))
    return path


def test_correct_trains_places_and_reports(tmp_path, config_file):
    out = tmp_path / "run"
    result = CliRunner().invoke(
        cli,
        [
            "correct",
            "--config",
            str(config_file),
            "--out",
            str(out),
            "--no-progress",
            "--placement",
            "rl,greedy",
            "--set",
            "correct.placement.episodes=4",
        ],
    )
    assert result.exit_code == 0, result.output
    assert "trained lipschitz" in result.output and "rl: layers" in result.output
    results = json.loads((out / "results.json").read_text())
    assert set(results["placements"]) == {"rl", "greedy"}
    assert results["level"] == 0.6 and results["transfers"] == 3
    for row in results["placements"].values():
        assert 0 <= row["accuracy"]["mean"] <= 1
        assert row["overhead"]["params_percent"] >= 0
    assert results["correct"]["placement"]["episodes"] == 4
    # the base checkpoint loads; a compensated checkpoint holds base.* and comp.* weights
    state, meta = load_checkpoint(out / "model.pt")
    model_from_checkpoint(state, meta)
    comp_state, comp_meta = load_checkpoint(out / "compensated-greedy.pt")
    assert comp_meta["method"]["name"] == "correctnet"
    assert comp_meta["method"]["base"] == meta["method"]
    wrapped = model_from_checkpoint(comp_state, comp_meta)  # rebuilt by the method's restore
    assert isinstance(wrapped, Compensated)
    assert (
        wrapped.layers == comp_meta["finish"]["layers"] == results["placements"]["greedy"]["layers"]
    )
    assert torch.equal(state["1.weight"], comp_state["base.1.weight"])
    assert wrapped(torch.zeros(2, 64)).shape == (2, 10)


def test_correct_with_given_layers_and_checkpoint(tmp_path, config_file):
    out = tmp_path / "first"
    runner = CliRunner()
    first = runner.invoke(
        cli,
        [
            "correct",
            "--config",
            str(config_file),
            "--out",
            str(out),
            "--no-progress",
            "--layers",
            "1",
        ],
    )
    assert first.exit_code == 0, first.output
    second = runner.invoke(
        cli,
        [
            "correct",
            "--config",
            str(config_file),
            "--out",
            str(tmp_path / "second"),
            "--checkpoint",
            str(out / "model.pt"),
            "--placement",
            "none",
            "--no-progress",
        ],
    )
    assert second.exit_code == 0, second.output
    assert "loaded" in second.output
    results = json.loads((tmp_path / "second" / "results.json").read_text())
    assert results["placements"] == {}


@pytest.mark.parametrize(
    "args, message",
    [
        (["--placement", "annealing"], "unknown search 'annealing'"),
        (["--set", "correct.placement.cost_weight=-1"], "cost_weight"),
        (["--set", "correct.nonsense=1"], "nonsense"),
        (["--layers", "7"], "no layer named '7'"),
    ],
)
def test_bad_options_are_one_line_errors(tmp_path, config_file, args, message):
    result = CliRunner().invoke(
        cli,
        [
            "correct",
            "--config",
            str(config_file),
            "--out",
            str(tmp_path / "x"),
            "--no-progress",
            *args,
        ],
    )
    assert result.exit_code == 2, result.output
    assert message in result.output and result.output.count("\n") == 1

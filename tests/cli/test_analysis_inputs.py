"""Attack and landscape records name their inputs like evaluation records do (checkpoint
digest, data fingerprint, config hash), through the real command line: `noiseproof attack`,
`noiseproof landscape`, compare's `attack:`/`landscape:` records, and `noiseproof train`'s
checkpoint; a saved analysis record whose inputs differ is refused, never reused."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from noiseproof.cli import cli
from noiseproof.data import datasets
from noiseproof.experiments.provenance import checkpoint_digest, data_fingerprint
from noiseproof.training.checkpoints import load_checkpoint

GRID = [
    "--dataset", "digits", "--model", "mlp", "--set", "model.hidden=[16]", "--methods",
    "standard", "--levels", "0", "--transfers", "2", "--epochs", "1", "--no-progress",
    "--set", "attack.zetas=[0.1]", "--set", "attack.n_steps=1", "--set", "attack.transfers=1",
    "--set", "attack.examples=50", "--set", "landscape.repeats=1",
    "--set", "landscape.alphas=[-1,0,1]", "--set", "landscape.examples=50",
]  # fmt: skip
ANALYSIS = {
    "attack": ["--zetas", "0.1", "--steps", "1", "--transfers", "1", "--max-test", "50"],
    "landscape": ["--repeats", "1", "--alphas", "-1,0,1", "--examples", "50"],
}


def invoke(*argv: str) -> tuple[int, str]:
    """Run the CLI in this process; (exit code, stderr)."""
    result = CliRunner().invoke(cli, list(argv))
    return result.exit_code, result.stderr


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory) -> Path:
    """A checkpoint written by `noiseproof train` (digits MLP, one epoch)."""
    path = tmp_path_factory.mktemp("train") / "m.pt"
    code, err = invoke(
        "train", "--dataset", "digits", "--model", "mlp", "--set", "model.hidden=[16]",
        "--method", "standard", "--epochs", "1", "--no-progress", "--out", str(path),
    )  # fmt: skip
    assert code == 0, err
    return path


@pytest.fixture(scope="module")
def finished(tmp_path_factory) -> Path:
    """A finished `compare` of one method with an attack and a landscape."""
    out = tmp_path_factory.mktemp("compare") / "run"
    code, err = invoke("compare", *GRID, "--out", str(out))
    assert code == 0, err
    return out


def test_the_train_command_checkpoint_names_its_data_and_config(checkpoint, finished):
    _, meta = load_checkpoint(checkpoint)
    digits = datasets.create({"name": "digits"})
    assert meta["inputs"]["data"] == data_fingerprint(digits.spec(), digits.load())
    assert len(meta["inputs"]["config"]) == 64
    # the same training in a compare names the same inputs (with its attack/landscape keys
    # in the config but not in the training's slice)
    _, theirs = load_checkpoint(finished / "checkpoints" / "standard-seed0.pt")
    assert theirs["inputs"] == meta["inputs"]


@pytest.mark.parametrize("command", ["attack", "landscape"])
def test_attack_and_landscape_commands_name_their_inputs(command, checkpoint, tmp_path):
    state, meta = load_checkpoint(checkpoint)
    runs = {}
    for seed in ("0", "0", "1"):
        out = tmp_path / f"{command}-{len(runs)}"
        code, err = invoke(
            command, str(checkpoint), *ANALYSIS[command], "--seed", seed, "--out", str(out)
        )
        assert code == 0, err
        saved = json.loads((out / f"{command}.json").read_text())
        named = saved["attacks"] if command == "attack" else [saved["inputs"]["standard"]]
        runs[out] = named[0]["inputs"] if command == "attack" else named[0]
    first, again, other_seed = runs.values()
    assert first["checkpoint"] == checkpoint_digest(state, meta)
    spec = dict(meta["dataset"])  # the checkpoint's dataset, limited by --max-test
    spec |= {"max_test": 50} if command == "attack" else {}
    data = datasets.create(spec).load()
    assert first["data"] == data_fingerprint(spec, data)
    assert again == first  # the same command names the same inputs
    assert other_seed["config"] != first["config"]  # the seed enters the settings' hash
    assert other_seed["checkpoint"] == first["checkpoint"] and other_seed["data"] == first["data"]


def test_compare_analysis_records_name_their_inputs_and_are_not_reused_when_they_differ(
    finished, tmp_path
):
    import shutil

    results = json.loads((finished / "results.json").read_text())
    (training,) = results["trainings"]
    digest, data = training["checkpoint"]["digest"], training["inputs"]["data"]
    (attack,) = results["attacks"]
    (landscape,) = results["landscapes"]
    for record in (attack, landscape):
        assert record["inputs"]["checkpoint"] == digest and record["inputs"]["data"] == data
        assert len(record["inputs"]["config"]) == 64
    assert attack["inputs"]["config"] != landscape["inputs"]["config"]
    copy = tmp_path / "run"
    shutil.copytree(finished, copy)
    for name in ("attack__standard__seed0.json", "landscape__standard__seed0.json"):
        path = copy / "jobs" / name
        original = path.read_text()
        record = json.loads(original)
        for item in record if isinstance(record, list) else [record]:
            item["inputs"]["checkpoint"] = "0" * 64
        path.write_text(json.dumps(record))
        code, err = invoke("compare", *GRID, "--out", str(copy), "--resume")
        assert code == 2, err  # the training's job fails naming the record, nothing reused
        (failed,) = [line for line in err.splitlines() if line.startswith("failed: train")]
        assert str(path) in failed and "its inputs differ at checkpoint" in failed, err
        assert err.splitlines()[-1].startswith("error: "), err
        path.write_text(original)  # its own inputs: reused as it is
    code, err = invoke("compare", *GRID, "--out", str(copy), "--resume")
    assert code == 0, err
    resumed = json.loads((copy / "results.json").read_text())
    assert resumed["attacks"] == results["attacks"]
    assert resumed["landscapes"] == results["landscapes"]

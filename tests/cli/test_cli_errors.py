"""Bad input: one line naming the problem, exit code 2, no traceback, nothing written."""

from __future__ import annotations

import subprocess
import sys

import pytest
import torch
from click.testing import CliRunner

from helpers import QUICK_COMPARE
from noiseproof.cli import cli

QUICK = [*QUICK_COMPARE, "--no-progress"]


def run(args):
    result = CliRunner().invoke(cli, args)
    return result.exit_code, result.output


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["--methods", "magic"], "unknown method 'magic'"),
        (["--noise", "cosmic"], "unknown noise model 'cosmic'"),
        (["--model", "transformer"], "unknown model 'transformer'"),
        (["--dataset", "imagenet"], "unknown dataset 'imagenet'"),
        (["--levels", "0,-0.1"], "must be finite and >= 0"),
        (["--levels", "nan"], "must be finite and >= 0"),
        (["--levels", "0,abc"], "--levels"),
        (["--transfers", "0"], "transfers"),
        (["--set", "train.lr=-1"], "lr"),
        (["--set", "methods=[{name: dropout, p: 1.5}]"], "method 'dropout'"),
        (["--set", "noise=[{name: relative_gaussian, zeta: -0.2}]"], "zeta"),
        (["--set", "nonsense"], "--set expects key=value"),
        (["--set", "wrong_key=1"], "wrong_key"),
        (["--set", "dataset={name: fashion-mnist, root: /no/such/dir}"], "/no/such/dir"),
        (["--set", "methods=[standard, standard]"], "distinct 'label'"),
    ],
)
def test_bad_compare_input(tmp_path, args, needle):
    out = tmp_path / "out"
    code, output = run(["compare", *QUICK, *args, "--out", str(out)])
    assert code == 2, output
    assert needle in output
    assert "Traceback" not in output
    assert len(output.strip().splitlines()) == 1, output
    assert not out.exists()


def test_missing_and_malformed_config_file(tmp_path):
    code, output = run(["compare", "--config", str(tmp_path / "none.yaml")])
    assert code == 2 and "config file not found" in output
    bad = tmp_path / "bad.yaml"
    bad.write_text("methods: [standard\nlevels: 0.1\n")
    code, output = run(["compare", "--config", str(bad)])
    assert code == 2 and "not valid YAML" in output and "line" in output
    scalar = tmp_path / "scalar.yaml"
    scalar.write_text("just a string\n")
    code, output = run(["compare", "--config", str(scalar)])
    assert code == 2 and "mapping" in output


def test_corrupt_and_tampered_checkpoints(tmp_path):
    garbage = tmp_path / "garbage.pt"
    garbage.write_bytes(b"not a checkpoint at all")
    code, output = run(["evaluate", str(garbage)])
    assert code == 2 and "unreadable" in output
    code, output = run(["evaluate", str(tmp_path / "absent.pt")])
    assert code == 2 and "not found" in output
    foreign = tmp_path / "foreign.pt"
    torch.save({"weight": torch.zeros(2)}, foreign)
    code, output = run(["evaluate", str(foreign)])
    assert code == 2 and "not a noiseproof checkpoint" in output


def test_tampered_checkpoint_is_refused(tmp_path):
    ckpt = tmp_path / "m.pt"
    code, output = run(
        [
            "train",
            "--dataset",
            "moons",
            "--model",
            "mlp",
            "--epochs",
            "1",
            "--no-progress",
            "--method",
            "standard",
            "--out",
            str(ckpt),
        ]
    )
    assert code == 0, output
    from noiseproof.training.checkpoints import load_checkpoint, save_checkpoint

    state, meta = load_checkpoint(ckpt)
    payload = torch.load(ckpt, weights_only=True)
    payload["state"] = {k: v + 1 for k, v in payload["state"].items()}
    torch.save(payload, ckpt)
    code, output = run(["evaluate", str(ckpt)])
    assert code == 2 and "altered" in output
    save_checkpoint(ckpt, state, meta)  # a clean re-save loads again
    assert load_checkpoint(ckpt)[1]["seed"] == meta["seed"]


def test_help_everywhere():
    for command in ([], ["compare"], ["train"], ["evaluate"], ["list"]):
        code, output = run([*command, "--help"])
        assert code == 0 and "Usage" in output


def test_list_shows_every_component_with_defaults():
    code, output = run(["list"])
    assert code == 0
    for name in [
        "standard",
        "dropout",
        "noise_injection",
        "relative_gaussian",
        "additive_gaussian",
        "lognormal",
        "quantize",
        "stuck_at",
        "chain",
        "mlp",
        "cnn",
        "lenet5",
        "vgg",
        "resnet20",
        "resnet32",
        "moons",
        "digits",
        "mnist",
        "fashion-mnist",
        "cifar10",
        "npz",
    ]:
        assert name in output, name
    assert "default 0.2" in output  # relative_gaussian zeta


def test_python_dash_m_entry_point():
    done = subprocess.run(
        [sys.executable, "-m", "noiseproof", "compare", "--methods", "bogus", "--no-progress"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 2
    assert done.stderr.strip() == "error: " + done.stderr.strip().removeprefix("error: ")
    assert "unknown method 'bogus'" in done.stderr
    assert "Traceback" not in done.stderr

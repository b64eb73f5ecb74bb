"""Asking for a device that is not there, or a precision a method cannot train in: one line
`error: ...` and exit code 2 on the command line, a ValueError naming the argument from Python."""

from __future__ import annotations

import pytest
from click.testing import CliRunner
from present import ABSENT
from torch import nn

import noiseproof as nf
from helpers import QUICK_COMPARE, tiny_data
from noiseproof.cli import cli


def one_line_error(args: list[str]) -> str:
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 2, result.output
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.output
    return lines[0]


@pytest.mark.parametrize(
    "command",
    [
        ["compare", *QUICK_COMPARE],
        ["train", "--dataset", "moons", "--method", "standard"],
        ["attack", "missing.pt"],
        ["landscape", "missing.pt"],
        ["correct", "--dataset", "moons", "--method", "standard"],
    ],
    ids=lambda c: c[0],
)
def test_an_absent_device_is_one_line_and_exit_2(command, tmp_path):
    out = tmp_path / "out"
    line = one_line_error([*command, "--device", ABSENT, "--out", str(out)])
    assert repr(ABSENT) in line and "not available" in line
    assert not (out / "results.json").exists()


def test_a_misspelt_device_names_the_choices(tmp_path):
    line = one_line_error(["compare", *QUICK_COMPARE, "--device", "gpu", "--out", str(tmp_path)])
    assert "auto" in line and "cuda:N" in line and "'gpu'" in line


def test_fp16_refusal_on_the_command_line(tmp_path):
    line = one_line_error(
        [
            "train",
            "--dataset",
            "moons",
            "--method",
            "adversarial",
            "--set",
            "train.precision=fp16",
            "--out",
            str(tmp_path / "m.pt"),
        ]
    )
    assert "'adversarial' cannot train in train.precision 'fp16'" in line


def test_python_api_raises_a_value_error_naming_device():
    model = nn.Sequential(nn.Flatten(), nn.Linear(64, 3))
    with pytest.raises(ValueError, match=r"^device: .*not available"):
        nf.train(model, tiny_data(), nf.create_method("standard"), device=ABSENT, progress=False)
    with pytest.raises(ValueError, match=r"^device: .*not available"):
        nf.compare(model, tiny_data(), methods=["standard"], levels=[0], device=ABSENT)
    with pytest.raises(ValueError, match=r"^device: expected auto"):
        nf.compare(model, tiny_data(), methods=["standard"], levels=[0], device="gpu")

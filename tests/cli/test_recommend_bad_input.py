"""`noiseproof recommend` on bad input: one `error: ...` line and exit 2, naming what is wrong,
for a folder that is not a finished run, a noise model or level the run lacks, a negative or
non-finite --within and a --confidence outside (0, 1); and a run written without per-chip
values or training costs still names its best method, saying what it lacks."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from noiseproof.cli import cli

LEVEL = ["--noise", "relative_gaussian", "--level", "0.5"]


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    """A real tiny compare: moons, two methods, levels 0 and 0.5."""
    out = tmp_path_factory.mktemp("recommend") / "run"
    args = ["compare", "--dataset", "moons", "--model", "mlp"]
    args += ["--methods", "standard,noise_injection", "--levels", "0,0.5", "--transfers", "6"]
    args += ["--epochs", "1", "--seed", "0", "--no-progress", "--out", str(out)]
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 0, result.output
    return out


def refused(args: list[str], message: str) -> None:
    result = CliRunner().invoke(cli, ["recommend", *args])
    assert result.exit_code == 2, result.output
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.output
    assert message in lines[0], lines[0]


@pytest.mark.parametrize(
    ("options", "message"),
    [
        (["--noise", "pcm", "--level", "0.5"], "--noise 'pcm' is not in this run"),
        (["--noise", "relative_gaussian", "--level", "0.7"], "--level 0.7 is not in this run"),
        ([*LEVEL, "--within", "-0.1"], "--within must be >= 0"),
        ([*LEVEL, "--within", "inf"], "--within must be >= 0 and finite"),
        ([*LEVEL, "--within", "nan"], "--within must be >= 0"),
        ([*LEVEL, "--confidence", "0"], "--confidence must be in (0, 1)"),
        ([*LEVEL, "--confidence", "1"], "--confidence must be in (0, 1)"),
        ([*LEVEL, "--confidence", "1.5"], "--confidence must be in (0, 1)"),
        ([*LEVEL, "--confidence", "nan"], "--confidence must be in (0, 1)"),
        ([*LEVEL, "--max-train-cost", "-1"], "--max-train-cost must be >= 0"),
    ],
)
def test_options_the_run_cannot_answer(run_dir, options, message):
    refused([str(run_dir), *options], message)


def test_folders_that_are_not_a_finished_run(run_dir, tmp_path):
    refused([str(tmp_path / "absent"), *LEVEL], "is not a finished compare run (no results.json)")
    refused([str(tmp_path), *LEVEL], "is not a finished compare run (no results.json)")
    refused([str(run_dir / "results.json"), *LEVEL], "is a file, not a compare run's folder")
    partial = '{"jobs": [{"method": "m"}]}'
    cases = {
        "{truncated": "is truncated or not valid JSON",
        "[1, 2]": "is not a compare run's results (no jobs)",
        '{"jobs": []}': "holds no evaluation records",
        partial: "jobs[0] is not an evaluation record (no noise, level, seed)",
    }
    for index, (text, message) in enumerate(cases.items()):
        folder = tmp_path / f"case{index}"
        folder.mkdir()
        (folder / "results.json").write_text(text)
        refused([str(folder), *LEVEL], message)


def test_a_run_without_per_chip_values_names_its_best(run_dir, tmp_path):
    results = json.loads((run_dir / "results.json").read_text())
    for job in results["jobs"]:
        del job["per_chip"]
    for training in results["trainings"]:
        del training["cost"]
    (tmp_path / "results.json").write_text(json.dumps(results))
    result = CliRunner().invoke(cli, ["recommend", str(tmp_path), *LEVEL])
    assert result.exit_code == 0, result.output
    assert "no chip-paired interval" in result.output
    assert "training cost not recorded" in result.output and "0 FLOPs" not in result.output
    assert "recommend: " in result.output and "(the best" in result.output

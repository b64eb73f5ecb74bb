"""End to end: a tiny `noiseproof compare` through the real CLI, resume, and the output files."""

from __future__ import annotations

import csv
import json
import math

import pytest
from click.testing import CliRunner

from helpers import digits_grid
from noiseproof.cli import cli

TINY = digits_grid(transfers=4, epochs=2)


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("compare") / "run"
    result = CliRunner().invoke(cli, ["compare", *TINY, "--out", str(out)])
    assert result.exit_code == 0, result.output
    return out, result.output


def test_compare_writes_every_output(tiny_run):
    out, output = tiny_run
    for name in ["results.json", "results.csv", "report.md", "report.html", "config.yaml"]:
        assert (out / name).is_file(), name
    assert list(out.glob("accuracy_*.png")) and list(out.glob("reliability_*.png"))
    assert "accuracy under relative_gaussian" in output


def test_results_json_schema(tiny_run):
    out, _ = tiny_run
    data = json.loads((out / "results.json").read_text())
    assert data["config"]["dataset"]["name"] == "digits"
    jobs = data["jobs"]
    assert len(jobs) == 2 * 2  # methods x levels
    for job in jobs:
        for key in ["method", "noise", "level", "seed", "transfers", "clean_accuracy"]:
            assert key in job
        assert set(job["accuracy"]) >= {"mean", "std", "min", "q05", "q50", "q95"}
        assert all(0.0 <= job["accuracy"][k] <= 1.0 for k in ("mean", "min", "q05", "q50", "q95"))
        assert job["reliability"]["threshold"] == 0.95
        assert 0.0 <= job["reliability"]["share"] <= 1.0
        assert job["transfers"] == 4
        assert job["config"]["method"]["name"] == job["method"]
    at_zero = [j for j in jobs if j["level"] == 0]
    for job in at_zero:  # level 0 is the clean network in every transfer
        assert job["accuracy"]["std"] == 0.0
        assert math.isclose(job["accuracy"]["mean"], job["clean_accuracy"])
        assert job["reliability"]["share"] == pytest.approx(job["clean_accuracy"])


def test_results_csv_loads_as_table(tiny_run):
    out, _ = tiny_run
    rows = list(csv.DictReader((out / "results.csv").open()))
    assert len(rows) == 4
    assert {"method", "noise", "level", "accuracy_mean", "reliability_share"} <= set(rows[0])


def test_report_html_is_self_contained(tiny_run):
    out, _ = tiny_run
    html = (out / "report.html").read_text()
    assert html.count("data:image/png;base64,") >= 2
    assert 'src="accuracy_' not in html


def test_same_seed_same_numbers(tiny_run, tmp_path):
    out, _ = tiny_run
    again = tmp_path / "again"
    result = CliRunner().invoke(cli, ["compare", *TINY, "--out", str(again)])
    assert result.exit_code == 0, result.output
    first = json.loads((out / "results.json").read_text())["jobs"]
    second = json.loads((again / "results.json").read_text())["jobs"]
    strip = ("seconds", "training")
    assert [{k: v for k, v in j.items() if k not in strip} for j in first] == [
        {k: v for k, v in j.items() if k not in strip} for j in second
    ]


def test_existing_results_need_resume(tiny_run):
    out, _ = tiny_run
    result = CliRunner().invoke(cli, ["compare", *TINY, "--out", str(out)])
    assert result.exit_code == 2
    assert "--resume" in result.output


def test_resume_skips_finished_jobs_and_redoes_missing(tmp_path):
    out = tmp_path / "run"
    assert CliRunner().invoke(cli, ["compare", *TINY, "--out", str(out)]).exit_code == 0
    reference = json.loads((out / "results.json").read_text())["jobs"]
    jobs = sorted((out / "jobs").glob("*.json"))
    kept_mtime = jobs[0].stat().st_mtime_ns
    jobs[-1].unlink()  # as if interrupted before the last job was written
    (out / "results.json").unlink()
    result = CliRunner().invoke(cli, ["compare", *TINY, "--out", str(out), "--resume"])
    assert result.exit_code == 0, result.output
    assert "loaded" in result.output and "trained" not in result.output
    assert jobs[0].stat().st_mtime_ns == kept_mtime
    resumed = json.loads((out / "results.json").read_text())["jobs"]
    drop = ("seconds",)
    assert [{k: v for k, v in j.items() if k not in drop} for j in resumed] == [
        {k: v for k, v in j.items() if k not in drop} for j in reference
    ]


def test_resume_with_other_config_is_refused(tmp_path):
    out = tmp_path / "run"
    assert CliRunner().invoke(cli, ["compare", *TINY, "--out", str(out)]).exit_code == 0
    result = CliRunner().invoke(
        cli, ["compare", *TINY, "--transfers", "7", "--out", str(out), "--resume"]
    )
    assert result.exit_code == 2
    assert "differs" in result.output


def test_train_then_evaluate_checkpoint(tmp_path):
    ckpt = tmp_path / "m.pt"
    args = ["--dataset", "digits", "--model", "mlp", "--epochs", "1", "--no-progress"]
    result = CliRunner().invoke(cli, ["train", *args, "--method", "standard", "--out", str(ckpt)])
    assert result.exit_code == 0, result.output
    assert ckpt.is_file() and ckpt.with_suffix(".history.csv").is_file()
    out = tmp_path / "eval"
    result = CliRunner().invoke(
        cli,
        [
            "evaluate",
            str(ckpt),
            "--levels",
            "0,0.3",
            "--transfers",
            "3",
            "--out",
            str(out),
            "--no-progress",
        ],
    )
    assert result.exit_code == 0, result.output
    jobs = json.loads((out / "results.json").read_text())["jobs"]
    assert [j["level"] for j in jobs] == [0.0, 0.3]
    assert "trained" not in result.output

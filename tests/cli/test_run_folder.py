"""The output folder as one object, through the real command line: results belong to their
inputs (checkpoint digest, data fingerprint, config hash), nothing is overwritten without
--resume or --overwrite, a refused run prints one line and writes nothing, records are
strict JSON."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest
from click.testing import CliRunner

from noiseproof.cli import cli
from noiseproof.experiments.run_folder import RunFolder

GRID = [
    "--dataset",
    "digits",
    "--model",
    "mlp",
    "--set",
    "model.hidden=[16]",
    "--methods",
    "standard",
    "--levels",
    "0,0.5",
    "--transfers",
    "2",
    "--epochs",
    "1",
    "--no-progress",
]
EVALUATE = ["--levels", "0,0.3", "--transfers", "2", "--no-progress"]


def invoke(*argv: str):
    """Run the CLI in this process; (exit code, stdout, stderr)."""
    result = CliRunner().invoke(cli, list(argv))
    return result.exit_code, result.stdout, result.stderr


def one_error_line(code: int, stdout: str, stderr: str) -> str:
    """Exit code 2, nothing on stdout, exactly one stderr line `error: ...`: that line."""
    assert code == 2, stderr
    assert stdout == "", stdout
    lines = stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), stderr
    assert len(lines[0]) <= 500, len(lines[0])
    return lines[0]


def strict_load(path: Path):
    """json.loads that refuses NaN/Infinity (parse_constant raising)."""

    def refuse(name: str):
        raise AssertionError(f"{path} holds {name}")

    return json.loads(path.read_text(), parse_constant=refuse)


def snapshot(folder: Path) -> dict[str, bytes]:
    """Every file under `folder` with its content."""
    return {str(p.relative_to(folder)): p.read_bytes() for p in folder.rglob("*") if p.is_file()}


@pytest.fixture(scope="module")
def checkpoints(tmp_path_factory) -> dict[str, Path]:
    """Two checkpoints of one method trained with seeds 0 and 1 (A and B), and one with
    another model size (C), each from `noiseproof train`."""
    root = tmp_path_factory.mktemp("checkpoints")
    made = {}
    for name, seed, hidden in (("A", "0", "[16]"), ("B", "1", "[16]"), ("C", "0", "[8]")):
        path = root / f"{name}.pt"
        code, _, err = invoke(
            "train", "--dataset", "digits", "--model", "mlp", "--set", f"model.hidden={hidden}",
            "--method", "standard", "--epochs", "1", "--seed", seed, "--no-progress",
            "--out", str(path),
        )  # fmt: skip
        assert code == 0, err
        made[name] = path
    return made


@pytest.fixture(scope="module")
def finished(tmp_path_factory) -> Path:
    """A finished `compare` of the small grid."""
    out = tmp_path_factory.mktemp("finished") / "run"
    code, _, err = invoke("compare", *GRID, "--out", str(out))
    assert code == 0, err
    return out


@pytest.fixture
def copy(finished, tmp_path) -> Path:
    """A copy of the finished run, to change."""
    out = tmp_path / "run"
    shutil.copytree(finished, out)
    return out


# B: results belong to their inputs ----------------------------------------------------------


def test_every_record_names_its_inputs(finished):
    results = strict_load(finished / "results.json")
    (training,) = results["trainings"]
    digest = training["checkpoint"]["digest"]
    assert training["checkpoint"]["path"] == "checkpoints/standard-seed0.pt"
    assert set(training["inputs"]) == {"data", "config"}
    for record in results["jobs"]:
        inputs = record["inputs"]
        assert set(inputs) == {"checkpoint", "data", "config"}
        assert inputs["checkpoint"] == digest and inputs["data"] == training["inputs"]["data"]
        assert all(len(value) == 64 for value in inputs.values())
        assert record["checkpoint_path"] == "checkpoints/standard-seed0.pt"
    configs = {record["inputs"]["config"] for record in results["jobs"]}
    assert len(configs) == 1  # the levels share one job config (level is the job's own key)
    for path in (finished / "jobs").glob("*.json"):
        assert strict_load(path)["inputs"]["checkpoint"] == digest


def test_evaluate_into_another_checkpoints_folder_is_refused_naming_both(checkpoints, tmp_path):
    out = tmp_path / "eval"
    code, _, err = invoke("evaluate", str(checkpoints["A"]), *EVALUATE, "--out", str(out))
    assert code == 0, err
    before = snapshot(out)
    for flags in ([], ["--resume"]):
        line = one_error_line(
            *invoke("evaluate", str(checkpoints["B"]), *EVALUATE, "--out", str(out), *flags)
        )
        assert f"checkpoint {checkpoints['A']}" in line and str(checkpoints["B"]) in line, line
        assert "--overwrite" in line, line
        assert snapshot(out) == before
    # the same checkpoint resumes: nothing recomputed
    code, _, err = invoke(
        "evaluate", str(checkpoints["A"]), *EVALUATE, "--out", str(out), "--resume"
    )
    assert code == 0, err
    assert (
        snapshot(out)["jobs/standard__relative_gaussian__0.3__seed0.json"]
        == before["jobs/standard__relative_gaussian__0.3__seed0.json"]
    )
    # --overwrite replaces A's evaluation with B's
    code, _, err = invoke(
        "evaluate", str(checkpoints["B"]), *EVALUATE, "--out", str(out), "--overwrite"
    )
    assert code == 0, err
    records = strict_load(out / "results.json")["jobs"]
    assert {r["checkpoint_path"] for r in records} == {str(checkpoints["B"].resolve())}


def test_resume_with_a_checkpoint_of_another_model_is_refused_naming_it(copy, checkpoints):
    target = copy / "checkpoints" / "standard-seed0.pt"
    shutil.copy(checkpoints["C"], target)  # same method and seed, hidden [8] instead of [16]
    before = snapshot(copy)
    line = one_error_line(*invoke("compare", *GRID, "--out", str(copy), "--resume"))
    assert str(target) in line and "was trained for another run" in line, line
    assert "its model differs at hidden: [8], expected [16]" in line, line
    assert "delete it" in line, line
    assert snapshot(copy) == before


def test_resume_with_a_checkpoint_of_other_data_is_refused_naming_it(copy, tmp_path):
    other = tmp_path / "other"
    argv = ["compare", *GRID, "--set", "dataset.max_train=300", "--out", str(other)]
    code, _, err = invoke(*argv)
    assert code == 0, err
    target = copy / "checkpoints" / "standard-seed0.pt"
    shutil.copy(other / "checkpoints" / "standard-seed0.pt", target)
    line = one_error_line(*invoke("compare", *GRID, "--out", str(copy), "--resume"))
    assert str(target) in line and "its dataset differs at max_train: 300, expected None" in line


def test_a_record_of_another_checkpoint_is_not_reused(copy):
    path = copy / "jobs" / "standard__relative_gaussian__0.5__seed0.json"
    record = json.loads(path.read_text())
    record["inputs"]["checkpoint"] = "0" * 64
    path.write_text(json.dumps(record))
    line = one_error_line(*invoke("compare", *GRID, "--out", str(copy), "--resume"))
    assert str(path) in line and "its inputs differ at checkpoint" in line, line
    path.unlink()  # as the message says: deleted, it is recomputed from this checkpoint
    code, _, err = invoke("compare", *GRID, "--out", str(copy), "--resume")
    assert code == 0, err
    assert strict_load(path)["inputs"]["checkpoint"] != "0" * 64


# C: nothing overwritten without consent -----------------------------------------------------


def test_results_and_report_alone_are_refused_without_resume_or_overwrite(finished, tmp_path):
    out = tmp_path / "run"
    out.mkdir()
    for name in ("results.json", "report.md"):
        shutil.copy(finished / name, out / name)
    before = snapshot(out)
    line = one_error_line(*invoke("compare", *GRID, "--out", str(out)))
    assert "already holds results" in line and "results.json" in line and "report.md" in line
    assert "--resume" in line and "--overwrite" in line
    assert snapshot(out) == before


def test_overwrite_replaces_every_old_output_and_keeps_other_files(copy):
    stale = copy / "jobs" / "standard__relative_gaussian__0.9__seed0.json"
    shutil.copy(copy / "jobs" / "standard__relative_gaussian__0.5__seed0.json", stale)
    (copy / "notes.txt").write_text("mine")
    code, _, err = invoke("compare", *GRID, "--levels", "0.25", "--out", str(copy), "--overwrite")
    assert code == 0, err
    assert "trained standard seed 0" in err  # retrained, not loaded
    assert sorted(p.name for p in (copy / "jobs").iterdir()) == [
        "standard__relative_gaussian__0.25__seed0.json"
    ]
    assert (copy / "notes.txt").read_text() == "mine"
    assert [r["level"] for r in strict_load(copy / "results.json")["jobs"]] == [0.25]
    assert not [p for p in copy.iterdir() if p.name.startswith(".noiseproof")]


def test_every_file_a_run_writes_is_an_output_of_its_folder(finished):
    """RunFolder owns the layout: what consent looks for and --overwrite removes
    (`outputs`) is every file the run wrote (a plot or record it did not know would survive an
    overwrite and mix two runs)."""
    written = {p for p in finished.rglob("*") if p.is_file() and ".noiseproof" not in p.name}
    assert written - set(RunFolder(finished).outputs()) == set()
    assert any(p.name.startswith("pareto_") for p in written)


def test_a_refused_overwrite_keeps_the_old_run(copy):
    before = snapshot(copy)
    argv = ["compare", *GRID, "--set", "dataset={name: npz, train: /no/such.npz}", "--overwrite"]
    line = one_error_line(*invoke(*argv, "--out", str(copy)))
    assert "no such file" in line
    assert snapshot(copy) == before


def test_resume_and_overwrite_exclude_each_other(copy):
    before = snapshot(copy)
    line = one_error_line(*invoke("compare", *GRID, "--out", str(copy), "--resume", "--overwrite"))
    assert "exclude each other" in line
    assert snapshot(copy) == before


@pytest.mark.parametrize("exists", [False, True])
def test_resume_with_nothing_to_resume_says_so_and_runs_fresh(tmp_path, exists):
    out = tmp_path / "run"
    if exists:
        out.mkdir()
    code, _, err = invoke("compare", *GRID, "--out", str(out), "--resume")
    assert code == 0, err
    warning = f"warning: --resume: {out} holds no earlier run, so a fresh one starts"
    assert err.splitlines()[0] == warning, err
    assert (out / "results.json").is_file()


def test_overwrite_documented_in_help():
    for command in ("compare", "evaluate"):
        code, out, _ = invoke(command, "--help")
        assert code == 0 and "--overwrite" in out and "--resume" in out


# D: one line means one line -----------------------------------------------------------------


def test_a_task_refused_after_loading_the_data_prints_one_line_and_writes_nothing(tmp_path):
    out = tmp_path / "run"
    out.mkdir()
    argv = ["compare", "--dataset", "diabetes", "--methods", "correctnet", "--levels", "0"]
    line = one_error_line(*invoke(*argv, "--epochs", "1", "--no-progress", "--out", str(out)))
    assert "cannot train task 'regression'" in line
    assert os.listdir(out) == []  # no config.yaml, no lock file


def test_a_checkpoint_of_other_data_prints_one_line_and_writes_nothing(checkpoints, tmp_path):
    out = tmp_path / "eval"
    argv = ["evaluate", str(checkpoints["A"]), "--dataset", "moons", "--out", str(out)]
    line = one_error_line(*invoke(*argv))
    assert "but the dataset has inputs [2]" in line
    assert not out.exists()


def test_a_yaml_alias_bomb_in_levels_is_one_short_line(tmp_path):
    rows = ["levels:", "  - &a0 [1, 1, 1, 1, 1, 1, 1, 1, 1, 1]"]
    rows += [f"  - &a{i} [{', '.join([f'*a{i - 1}'] * 10)}]" for i in range(1, 9)]
    config = tmp_path / "bomb.yaml"
    config.write_text("\n".join(rows) + "\n")  # over 10^9 numbers when expanded
    line = one_error_line(*invoke("compare", "--config", str(config), "--out", str(tmp_path / "o")))
    assert "levels" in line and len(line) < 300, line
    assert not (tmp_path / "o").exists()


# strict JSON --------------------------------------------------------------------------------


def test_without_a_validation_split_best_val_is_null_with_its_reason(tmp_path):
    out = tmp_path / "run"
    argv = ["compare", *GRID, "--set", "dataset.val_fraction=0", "--out", str(out)]
    code, _, err = invoke(*argv)
    assert code == 0, err
    results = strict_load(out / "results.json")
    (training,) = results["trainings"]
    assert training["best_val"] is None
    assert training["best_val_reason"] == "no validation split: the last epoch was kept"
    for record in results["jobs"]:
        assert record["training"]["best_val"] is None
        assert strict_load(
            out / "jobs" / f"standard__relative_gaussian__{record['level']:g}__seed0.json"
        )
    assert "n/a" in (out / "report.md").read_text()

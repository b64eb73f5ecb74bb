"""Messages and progress: results tables on stdout, info and progress on stderr, plain lines
(no carriage returns or escape codes) when stderr is not a terminal, --quiet and -v, --log."""

from __future__ import annotations

import io
import logging
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from noiseproof import logs
from noiseproof.cli import cli
from noiseproof.progress import Bar, Lines, Silent, progress_bar

TINY = [
    "--dataset",
    "digits",
    "--model",
    "mlp",
    "--set",
    "model.hidden=[16]",
    "--epochs",
    "2",
    "--seed",
    "0",
    "--set",
    "train.batch_size=128",
]

# the CLI with plain progress lines after every step (INTERVAL 0), as `noiseproof ...`
RUN_CLI = (
    "import noiseproof.progress as p; p.INTERVAL = 0.0; from noiseproof.cli import main; main()"
)


def test_redirected_compare_has_plain_lines_and_tables_on_stdout(tmp_path):
    out = tmp_path / "run"
    args = [*TINY, "--methods", "standard", "--levels", "0,0.5", "--transfers", "3"]
    log_file = tmp_path / "stderr.log"
    with log_file.open("wb") as stderr:
        done = subprocess.run(
            [sys.executable, "-c", RUN_CLI, "compare", *args, "--out", str(out), "--log", "csv"],
            stdout=subprocess.PIPE,
            stderr=stderr,
            timeout=300,
        )
    stdout, stderr_text = done.stdout.decode(), log_file.read_text()
    assert done.returncode == 0, stderr_text
    for text in (stdout, stderr_text):
        assert "\r" not in text and "\x1b" not in text
    assert "accuracy under relative_gaussian" in stdout  # the results table: stdout
    assert "dataset digits" not in stdout and "dataset digits" in stderr_text
    progress = [line for line in stderr_text.splitlines() if line.startswith("train standard:")]
    assert progress and "epoch=2/2" in progress[-1] and "100% " in progress[-1]
    assert any(line.startswith("compare jobs: ") for line in stderr_text.splitlines())
    rows = (out / "logs" / "standard-seed0" / "history.csv").read_text().splitlines()
    assert rows[0].startswith("epoch,") and len(rows) == 3


def test_quiet_prints_only_results_and_verbose_adds_debug(tmp_path):
    runner = CliRunner()
    quiet = runner.invoke(
        cli, ["-q", "train", *TINY, "--method", "standard", "--out", str(tmp_path / "q.pt")]
    )
    assert quiet.exit_code == 0, quiet.output
    assert quiet.stdout == "" and quiet.stderr == ""
    assert (tmp_path / "q.pt").is_file()
    verbose = runner.invoke(
        cli, ["train", *TINY, "--method", "standard", "-v", "--out", str(tmp_path / "v.pt")]
    )
    assert verbose.exit_code == 0, verbose.output
    assert "debug: noiseproof.cli: resolved config:" in verbose.stderr
    assert "trained standard seed 0" in verbose.stderr and verbose.stdout == ""
    both = runner.invoke(cli, ["-q", "train", "-v", "--out", str(tmp_path / "b.pt")])
    assert both.exit_code == 2 and "exclude each other" in both.output
    assert logging.getLogger("noiseproof").handlers == []  # each run puts logging back


def test_quiet_compare_still_prints_its_table(tmp_path):
    args = [*TINY, "--methods", "standard", "--levels", "0", "--transfers", "2"]
    result = CliRunner().invoke(cli, ["compare", *args, "--quiet", "--out", str(tmp_path / "r")])
    assert result.exit_code == 0, result.output
    assert "accuracy under relative_gaussian" in result.stdout and result.stderr == ""


def test_progress_kinds(monkeypatch):
    assert isinstance(progress_bar(3, "x", enabled=False), Silent)
    monkeypatch.setattr(sys, "stderr", io.StringIO())
    assert type(progress_bar(3, "x")) is Lines

    class Terminal(io.StringIO):
        def isatty(self) -> bool:
            return True

    monkeypatch.setattr(sys, "stderr", Terminal())
    bar = progress_bar(3, "x")
    assert type(bar) is Bar
    bar.update()
    bar.close()
    assert "\r" in sys.stderr.getvalue()  # a tqdm bar: only on a terminal
    restore = logs.configure(-1)  # --quiet: no progress at all
    try:
        assert type(progress_bar(3, "x")) is Silent
    finally:
        restore()


def test_plain_lines_are_periodic(caplog):
    with caplog.at_level(logging.INFO, logger="noiseproof.progress"):
        with Lines(4, "train x", interval=3600) as quiet_bar:  # never due: a short loop is silent
            quiet_bar.update(4)
        assert caplog.messages == []
        with Lines(4, "train x", interval=0) as bar:
            bar.update()
            bar.set_postfix({"epoch": "1/2", "loss": "0.31"})
            bar.update()
    assert caplog.messages[0] == "train x: 25% (1/4)"
    assert caplog.messages[1] == "train x: 50% (2/4), epoch=1/2, loss=0.31"
    assert caplog.messages[-1] == "train x: 50% (2/4), epoch=1/2, loss=0.31"  # on close


def test_log_names_are_checked_before_training(tmp_path):
    result = CliRunner().invoke(
        cli,
        [
            "train",
            *TINY,
            "--method",
            "standard",
            "--log",
            "csv,wandb",
            "--out",
            str(tmp_path / "m.pt"),
        ],
    )
    assert result.exit_code == 2
    assert "error: --log: unknown logger 'wandb' (known: csv, tensorboard)" in result.output
    assert not Path(tmp_path / "m.pt").exists()


@pytest.mark.parametrize("verbosity", [2, "loud"])
def test_configure_refuses_unknown_verbosity(verbosity):
    with pytest.raises(ValueError, match="verbosity"):
        logs.configure(verbosity)

"""`noiseproof fit-device`: writes a device YAML every command takes as `measured` and a plot;
malformed measurements are one line `error: ...`, exit code 2, nothing written."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from helpers import QUICK_COMPARE
from noiseproof.cli import cli
from noiseproof.devicefit.fit import FitSettings, fit_device
from noiseproof.devicefit.measurements import read_measurements
from noiseproof.noise import create_noise
from noiseproof.noise.measured import load_device
from reference.measured_reference import synthetic_measurements, write_csv

ROWS = "g_target,g_programmed\n" + "".join(f"{20 + i % 180},{21 + i % 180}.5\n" for i in range(400))
"""400 cells, targets 20..199 uS, every one programmed 1.5 uS high: no spread to fit."""


def run(args):
    result = CliRunner().invoke(cli, args)
    return result.exit_code, result.output


@pytest.fixture(scope="module")
def measurements(tmp_path_factory):
    return write_csv(tmp_path_factory.mktemp("m") / "m.csv", synthetic_measurements(3000, 1))


def test_fit_device_writes_the_yaml_and_plot_and_compare_runs_with_it(tmp_path, measurements):
    out = tmp_path / "dev" / "device.yaml"
    code, output = run(["fit-device", str(measurements), "--out", str(out), "--bins", "5"])
    assert code == 0, output
    assert "sigma p2" in output and "drift nu mean" in output
    assert out.with_suffix(".png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    device = load_device(out)
    fitted = fit_device(read_measurements(measurements), FitSettings(bins=5)).device
    assert device == fitted
    assert create_noise({"name": "measured", "file": str(out)}).device == device
    runs = tmp_path / "runs"
    noise = f"noise=[{{name: measured, file: {out}}}]"
    args = ["compare", *QUICK_COMPARE, "--levels", "0,1", "--set", noise, "--no-progress"]
    code, output = run([*args, "--out", str(runs)])
    assert code == 0, output
    results = json.loads((runs / "results.json").read_text())
    recorded = results["config"]["noise"][0]
    assert recorded["file"] == str(out)
    assert recorded["device"]["sigma"]["coefficients"] == list(device.sigma.coefficients)
    assert {job["level"] for job in results["jobs"]} == {0, 1}


def test_plot_path_can_be_chosen(tmp_path, measurements):
    out, plot = tmp_path / "device.yaml", tmp_path / "figures" / "fit.png"
    args = ["fit-device", str(measurements), "--out", str(out), "--plot", str(plot)]
    code, output = run([*args, "--bins", "5", "--degree", "1"])
    assert code == 0, output
    assert plot.is_file() and not out.with_suffix(".png").exists()
    assert len(load_device(out).sigma.coefficients) == 2


BAD_CSV = [
    ("missing-column", "g_target,g_read\n1,2\n", [], "lacks column(s) g_programmed"),
    ("unknown-column", "g_target,g_programmed,time\n1,2,3\n", [], "unknown column(s) time"),
    ("non-numeric", "g_target,g_programmed\n10,abc\n", [], "line 2: g_programmed 'abc' is not"),
    ("negative", "g_target,g_programmed\n10,-3\n", [], "g_programmed -3 is negative"),
    ("not-finite", "g_target,g_programmed\nnan,3\n", [], "g_target 'nan' is not finite"),
    ("empty", "", [], "is empty"),
    ("header-only", "g_target,g_programmed\n", [], "no rows"),
    ("ragged-row", "g_target,g_programmed\n1,2,3\n", [], "line 2: 3 values for 2 columns"),
    ("reads-without-cell", "g_target,g_programmed,time_s,g_read\n1,2,3,4\n", [], "need a cell"),
    ("time-without-read", "cell,g_target,g_programmed,time_s\na,1,2,3\n", [], "go together"),
    (
        "too-few-reads",
        "cell,g_target,g_programmed,time_s,g_read\na,1,2,1,2\na,1,2,10,2\n",
        [],
        "cell a has 2 read(s)",
    ),
    (
        "inconsistent-cell",
        "cell,g_target,g_programmed,time_s,g_read\na,1,2,1,2\na,1,3,10,2\n",
        [],
        "cell a has another g_target or g_programmed than on line 2",
    ),
    ("repeated-cell", "cell,g_target,g_programmed\na,1,2\na,1,2\n", [], "cell a repeats line 2"),
    ("one-target", "g_target,g_programmed\n5,5\n5,6\n", [], "every g_target is 5"),
    ("too-few-per-bin", ROWS, ["--bins", "20"], "bin 1 of 20 (g_target 20-28.95 uS)"),
    ("no-spread", ROWS, [], "have no spread"),
    ("degree-3", ROWS, ["--degree", "3"], "degree"),
    ("bins-below-degree", ROWS, ["--bins", "3"], "bins (3) must be >= degree + 2"),
    ("threshold-zero", ROWS, ["--stuck-threshold", "0"], "stuck_threshold"),
    ("out-is-a-folder", ROWS, ["--out", "{folder}"], "is a folder"),
    ("not-utf8", b"\xff\xfe\x00g", [], "is not UTF-8"),
]


@pytest.mark.parametrize(
    ("content", "extra", "needle"), [c[1:] for c in BAD_CSV], ids=[c[0] for c in BAD_CSV]
)
def test_malformed_measurements_are_one_line_and_write_nothing(tmp_path, content, extra, needle):
    csv = tmp_path / "m.csv"
    csv.write_bytes(content if isinstance(content, bytes) else content.encode())
    folder = tmp_path / "existing"
    folder.mkdir()
    out = tmp_path / "out" / "device.yaml"
    extra = [str(folder) if e == "{folder}" else e for e in extra]
    code, output = run(["fit-device", str(csv), "--out", str(out), *extra])
    assert code == 2, output
    assert output.startswith("error: ") and needle in output, output
    assert len(output.strip().splitlines()) == 1 and "Traceback" not in output
    assert not (tmp_path / "out").exists() and not any(folder.iterdir())


def test_missing_measurements_file(tmp_path):
    code, output = run(["fit-device", str(tmp_path / "none.csv"), "--out", str(tmp_path / "d")])
    assert code == 2 and "measurements file not found" in output
    assert len(output.strip().splitlines()) == 1


def test_a_missing_device_file_in_a_config_is_one_line(tmp_path):
    noise = f"noise=[{{name: measured, file: {tmp_path / 'none.yaml'}}}]"
    code, output = run(["compare", *QUICK_COMPARE, "--set", noise, "--out", str(tmp_path / "r")])
    assert code == 2, output
    assert "device file not found" in output and str(tmp_path / "none.yaml") in output
    assert len(output.strip().splitlines()) == 1

"""`fit-device` on the data real benches give: spreadsheet CSVs read as the plain file they hold,
outliers far outside every bin refused by line (never fitted as a stuck cluster), a fitted
sigma(G) below 0 anywhere in the window refused, and a device file whose sigma is negative
refused by the `measured` noise model; each one line, exit code 2, nothing written."""

from __future__ import annotations

import numpy as np
import pytest
from click.testing import CliRunner

from noiseproof.cli import cli
from noiseproof.devicefit.fit import FitSettings, fit_device
from noiseproof.devicefit.measurements import read_measurements
from noiseproof.errors import NoiseproofError
from noiseproof.noise import create_noise
from noiseproof.noise.measured import load_device, negative_parts, negative_sigma
from reference.measured_reference import DEVICE_FIXTURE, synthetic_measurements, write_csv


def run(args):
    result = CliRunner().invoke(cli, args)
    return result.exit_code, result.output


def assert_refused(output: str, code: int, needle: str, out_folder) -> None:
    assert code == 2, output
    assert output.startswith("error: ") and needle in output, output
    assert len(output.strip().splitlines()) == 1 and "Traceback" not in output
    assert not out_folder.exists()


def small_device(path, cells=2000, seed=0, sigma=lambda g: 0.2 + 0.01 * g):
    """A device of targets uniform in 0-25 uS, programmed 0.3 uS high with noise sigma(G);
    one row per cell (cell, g_target, g_programmed). Returns the rows written."""
    rng = np.random.default_rng(seed)
    target = rng.uniform(0, 25, cells)
    programmed = np.maximum(target + 0.3 + sigma(target) * rng.standard_normal(cells), 0)
    rows = [
        {"cell": f"c{i}", "g_target": repr(float(t)), "g_programmed": repr(float(p))}
        for i, (t, p) in enumerate(zip(target, programmed, strict=True))
    ]
    write_csv(path, rows)
    return rows


def test_a_spreadsheet_export_fits_as_the_plain_csv(tmp_path):
    plain = write_csv(tmp_path / "plain.csv", synthetic_measurements(3000, 1))
    lines = plain.read_text().splitlines()
    blank = "," * lines[0].count(",") + ","  # a blank spreadsheet row: only commas
    body = [lines[0], *lines[1:100], blank, *lines[100:], "", blank]
    excel = tmp_path / "excel.csv"  # BOM, CRLF, a trailing comma on every line, blank rows
    excel.write_bytes(("\ufeff" + "".join(f"{line},\r\n" for line in body)).encode())
    out = tmp_path / "device.yaml"
    code, output = run(["fit-device", str(excel), "--out", str(out), "--bins", "5"])
    assert code == 0, output
    expected = fit_device(read_measurements(plain), FitSettings(bins=5)).device
    assert load_device(out) == expected.model_copy(update={"source": str(excel)})


@pytest.mark.parametrize(
    ("content", "needle"),
    [
        ("g_target,,g_programmed\n1,2,3\n", "column 2 of the header has no name"),
        ("g_target,g_programmed,\n1,2,3\n", "line 2: 3 values for 2 columns"),
        ("g_target,g_programmed,\n1,2,,\n", "line 2: 4 values for 2 columns"),
    ],
)
def test_unnamed_columns_that_hold_values_are_refused(tmp_path, content, needle):
    (tmp_path / "m.csv").write_text(content)
    code, output = run(["fit-device", str(tmp_path / "m.csv"), "--out", str(tmp_path / "o/d")])
    assert_refused(output, code, needle, tmp_path / "o")


def test_an_outlier_far_outside_every_bin_is_refused_by_line(tmp_path):
    path = tmp_path / "m.csv"
    rows = small_device(path)
    rows[137]["g_programmed"] = "1e30"  # the rest: 0-25 uS
    write_csv(path, rows)
    code, output = run(["fit-device", str(path), "--out", str(tmp_path / "out" / "d.yaml")])
    limit = 10 * max(float(r["g_target"]) for r in rows)
    assert_refused(
        output,
        code,
        f"m.csv: 1 value(s) far outside every bin, above 10 x the largest g_target "
        f"({limit:.4g} uS): line 139 (cell c137: g_programmed 1e+30 uS); no device holds that",
        tmp_path / "out",
    )
    assert "fix or delete these rows" in output


def test_many_outliers_and_outlying_reads_are_counted(tmp_path):
    rows = [
        {"cell": "a", "g_target": "10", "g_programmed": "10.5", "time_s": t, "g_read": g}
        for t, g in (("1", "10.4"), ("10", "9.9e37"), ("100", "10.2"))
    ]
    rows += [
        {"cell": f"n{i}", "g_target": "20", "g_programmed": "2e4", "time_s": "1", "g_read": "1"}
        for i in range(4)
    ]
    path = write_csv(tmp_path / "m.csv", rows)
    code, output = run(["fit-device", str(path), "--out", str(tmp_path / "out" / "d.yaml")])
    assert_refused(
        output,
        code,
        "5 value(s) far outside every bin, above 10 x the largest g_target (200 uS): line 3 "
        "(cell a: g_read 9.9e+37 uS), line 5 (cell n0: g_programmed 2e+04 uS), line 6 (cell "
        "n1: g_programmed 2e+04 uS) and 2 more",
        tmp_path / "out",
    )


def test_stuck_cells_near_the_window_are_not_outliers(tmp_path):
    rows = small_device(tmp_path / "m.csv")
    far = [row for row in rows if float(row["g_target"]) > 5][:40]  # 5+ sigma from 0
    for high, low in zip(far[:20], far[20:], strict=True):  # 1 % at 4 x G_max, 1 % at 0
        high["g_programmed"], low["g_programmed"] = "100", "0"
    path = write_csv(tmp_path / "m.csv", rows)
    device = fit_device(read_measurements(path), FitSettings(bins=5)).device
    assert device.stuck_high.cells == 20 and device.stuck_high.g_mean_us == 100
    assert device.stuck_low.cells == 20


def dipping(g):
    """A sigma(G) that falls to 0.01 uS at both ends of 0-25 uS: a parabola through its bins
    dips below 0 there."""
    return 0.01 + 0.5 * np.sin(np.pi * g / 25) ** 2


def test_a_fitted_sigma_below_zero_in_the_window_is_refused(tmp_path):
    path = tmp_path / "m.csv"
    small_device(path, cells=4000, sigma=dipping)
    out = tmp_path / "out" / "d.yaml"
    code, output = run(["fit-device", str(path), "--out", str(out)])
    needle = "sigma(G) fitted with --degree 2 is negative for G in "
    assert_refused(output, code, needle, out.parent)
    assert "fit --degree 1, which stays positive" in output
    code, output = run(["fit-device", str(path), "--out", str(out), "--degree", "1"])
    assert code == 0, output
    assert negative_sigma(load_device(out).sigma.coefficients, load_device(out).window_us) is None


def test_negative_parts_of_a_polynomial():
    assert negative_parts((0.5, 0.02, 5e-5), (20, 200)) == []
    assert negative_parts((1.0, -0.4, 0.04), (0, 25)) == []  # touches 0 at G = 5
    assert negative_parts((-1.0,), (20, 200)) == [(20, 200)]
    assert negative_parts((1.0, -0.1), (0, 25)) == [(10, 25)]
    (a, b), (c, d) = negative_parts((-0.1, 0.1, -0.004), (0, 25))
    assert (a, d) == (0, 25) and b == pytest.approx(1.0436, abs=1e-4)
    assert b + c == pytest.approx(25)
    assert negative_sigma((1.0, -0.1), (0, 25)) == (
        "negative for G in 10-25 uS of the window 0-25 uS (lowest -1.5 uS at G = 25)"
    )


@pytest.mark.parametrize(
    ("coefficients", "where"),
    [
        ("[-0.5, 0.0, 0.0]", "negative for G in 20.02-200 uS"),  # across the whole window
        ("[-1.0, 0.01, 0.0]", "negative for G in 20.02-100 uS"),  # over part of it
    ],
)
def test_a_device_file_with_sigma_below_zero_is_refused_when_loaded(tmp_path, coefficients, where):
    text = DEVICE_FIXTURE.read_text()
    sigma = text.index("sigma:")
    start = text.index("coefficients: ", sigma) + len("coefficients: ")
    end = text.index("]", start) + 1
    path = tmp_path / "device.yaml"
    path.write_text(text[:start] + coefficients + text[end:])
    with pytest.raises(NoiseproofError) as caught:
        create_noise({"name": "measured", "file": str(path)})
    message = str(caught.value)
    assert f"device file {path}: sigma: {where} of the window 20.02-200 uS" in message
    assert "would silently mean no noise there" in message and "\n" not in message
    noise = f"noise=[{{name: measured, file: {path}}}]"
    args = ["compare", "--dataset", "moons", "--set", noise, "--out", str(tmp_path / "run")]
    code, output = run(args)
    assert_refused(output, code, where, tmp_path / "run")

"""`noiseproof fit-device`: a `measured` noise model fitted from a user's measured devices.

Reads the measurement CSV, fits offset, sigma(G), stuck cells and drift
(noiseproof.devicefit.fit), writes the device YAML (--out) and a data-vs-fit PNG beside it,
and prints the fitted parameters with their standard errors. Nothing is written when the CSV
or an option is refused.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from noiseproof import logs
from noiseproof.errors import NoiseproofError


def _paths(out: str, plot: str | None) -> tuple[Path, Path]:
    """(YAML path, PNG path), refused in one line when either is a folder or they coincide."""
    if not out.strip():
        raise NoiseproofError("--out is empty: give the device YAML file to write")
    yaml_path = Path(out)
    png_path = yaml_path.with_suffix(".png") if plot is None else Path(plot)
    for option, path in (("--out", yaml_path), ("--plot", png_path)):
        if path.is_dir():
            raise NoiseproofError(f"{option} {path} is a folder: give the file to write")
    if png_path.resolve() == yaml_path.resolve():
        raise NoiseproofError(f"--plot and --out are the same file {yaml_path}")
    return yaml_path, png_path


@click.command(name="fit-device")
@click.argument("measurements", type=click.Path())
@click.option(
    "--out",
    type=click.Path(),
    default="device.yaml",
    show_default=True,
    help="Device YAML to write (use it as noise: [{name: measured, file: ...}]).",
)
@click.option("--plot", type=click.Path(), help="PNG of data vs fit [default: --out as .png].")
@click.option("--bins", type=int, default=10, show_default=True, help="Bins of target G.")
@click.option("--degree", type=int, default=2, show_default=True, help="Degree of sigma(G), <= 2.")
@click.option(
    "--stuck-threshold",
    type=float,
    default=5.0,
    show_default=True,
    help="A cell farther than this many sigma(G) from target + offset is stuck.",
)
def command(measurements: str, **opts: Any) -> None:
    """Fit a noise model to measured devices: offset, sigma(G), stuck cells, drift.

    MEASUREMENTS is a CSV with a header; conductances in uS (>= 0). Required columns:
    g_target (the conductance asked for) and g_programmed (the conductance measured after
    programming), one row per cell. Optional: cell (an id), and time_s with g_read for repeated
    reads (long format: one row per read, time_s seconds > 0 since programming, its cell's
    g_target and g_programmed repeated on each row; each cell >= 3 reads at >= 2 times). Any
    other column is refused. Spreadsheet exports (a byte-order mark, CRLF, a trailing comma on
    every line, blank rows) read as they are. A g_programmed or g_read above 10 x the largest
    g_target is an outlier, refused with its lines named (fix or delete those rows).

    The fit: cells farther than --stuck-threshold sigma(G) from target + offset are stuck (low
    or high; iterative sigma clipping); offset(G) = c0 + c1 G by weighted least squares;
    sigma(G) per equal-width bin of targets (each bin needs >= 30 working cells) with its
    standard error, and a polynomial of --degree through the bins weighted by 1/se (refused
    when it is negative anywhere in the window: the line names a lower --degree); with reads,
    per cell nu = -d ln G / d ln(t/t0) (t0: the earliest read), then nu's mean and spread.

    Writes --out (YAML, commented: units and standard errors) and the plot; every command then
    takes noise: [{name: measured, file: device.yaml}] (a relative file is resolved against
    the current folder; its sweep level `scale` multiplies every effect, `t_inference` reads
    the chip after drift).
    """
    from noiseproof.atomic import write_text_atomic
    from noiseproof.devicefit.devicefile import device_yaml, summary_rows
    from noiseproof.devicefit.fit import FitSettings, fit_device
    from noiseproof.devicefit.measurements import read_measurements
    from noiseproof.devicefit.plot import fit_plot
    from noiseproof.experiments.results import text_table
    from noiseproof.outputs import output_file
    from noiseproof.registry import validated

    settings = validated(
        FitSettings,
        "fit-device",
        bins=opts["bins"],
        degree=opts["degree"],
        stuck_threshold=opts["stuck_threshold"],
    )
    yaml_path, png_path = _paths(opts["out"], opts["plot"])
    fit = fit_device(read_measurements(measurements), settings)
    beside = [png_path.name] if png_path.parent.resolve() == yaml_path.parent.resolve() else []
    with output_file(yaml_path, beside):
        write_text_atomic(yaml_path, device_yaml(fit.device))
        fit_plot(fit, png_path)
    click.echo(text_table(*summary_rows(fit.device)))
    logs.info(f"\nwrote {yaml_path} and {png_path}")

"""`noiseproof calibrate`: re-fit a programmed chip's digital parameters on a calibration split.

The chip is chip K of a Monte Carlo run (--chip: drawn exactly as `compare` / `evaluate` draw
chip K for that seed, noise model and level) or a real array read back (--readback: the
layout `noiseproof export` writes, conductances measured). Its analog weights stay as
programmed; the digital parameters of `calibration.params` are re-fitted on
`calibration.examples` examples of the training split (noiseproof.calibration). --out is a
checkpoint of that chip: its programmed weights and the re-fitted digital parameters, which
`noiseproof evaluate` evaluates as it is (docs/calibration.md).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from noiseproof import logs
from noiseproof.commands.options import build_config, device_option, numbers, split_list
from noiseproof.errors import NoiseproofError
from noiseproof.outputs import locks_output


def chip_options(opts: dict[str, Any]) -> None:
    """NoiseproofError (one line) for a bad --chip / --readback / --examples / --steps."""
    if (opts["chip"] is None) == (opts["readback"] is None):
        raise NoiseproofError("give --chip K (a simulated chip) or --readback DIR, one of them")
    if opts["chip"] is not None and opts["chip"] < 0:
        raise NoiseproofError(f"--chip: must be >= 0, got {opts['chip']}")
    if opts["examples"] is not None and opts["examples"] < 1:
        raise NoiseproofError(f"--examples: must be >= 1, got {opts['examples']}")
    if opts["steps"] is not None and opts["steps"] < 0:
        raise NoiseproofError(f"--steps: must be >= 0, got {opts['steps']}")


@click.command(name="calibrate")
@click.argument("checkpoint", type=click.Path())
@click.option("--config", "config_file", type=click.Path(), help="YAML with noise/levels/...")
@click.option("--dataset", help="Calibrate and test on this dataset instead of the checkpoint's.")
@click.option("--noise", help="Noise model of the simulated chip (default: the config's first).")
@click.option("--level", help="Its level (default: the noise model's first level).")
@click.option("--seed", help="Seed of the Monte Carlo run the chip belongs to.")
@click.option("--chip", type=int, help="Simulated chip: its index K in that run (0, 1, ...).")
@click.option(
    "--readback",
    metavar="DIR",
    type=click.Path(),
    help="A real chip: measured G+/G- per tile in the layout of `noiseproof export`.",
)
@click.option("--examples", type=int, help="Calibration examples (config calibration.examples).")
@click.option(
    "--params",
    help="What is re-fitted, comma-separated: gain, bias, norm, affine, input_range "
    "(calibration.params).",
)
@click.option("--steps", type=int, help="Gradient steps after the fit (calibration.steps).")
@click.option("--set", "assignments", multiple=True, metavar="KEY=VALUE", help="Override a key.")
@device_option
@click.option(
    "--out",
    type=click.Path(),
    default="runs/calibrate/calibrated.pt",
    show_default=True,
    help="The calibrated chip's checkpoint.",
)
@locks_output("out", file=True)
def command(checkpoint: str, **opts: Any) -> None:
    """Calibrate one programmed chip: its analog weights as programmed (drawn or read back),
    its digital gains, offsets and norms re-fitted on examples of the training split; prints
    the test metrics without noise, of the chip and of the calibrated chip."""
    from noiseproof.commands.from_checkpoint import checkpoint_base, refuse_owned_changes
    from noiseproof.training.checkpoints import load_checkpoint

    chip_options(opts)
    _, meta = load_checkpoint(checkpoint)
    if meta.get("finish") or meta.get("calibration"):
        what = "is already calibrated" if meta.get("calibration") else "deploys a method's finish"
        raise NoiseproofError(f"checkpoint {checkpoint} {what}: calibrate a trained model")
    settings = {"examples": opts["examples"], "steps": opts["steps"]}
    settings["params"] = split_list(opts["params"])
    base = checkpoint_base(meta)
    config = build_config(
        opts["config_file"],
        {
            "dataset": opts["dataset"],
            "noise": split_list(opts["noise"]),
            "levels": numbers(opts["level"], "--level"),
            "seeds": numbers(opts["seed"], "--seed", int),
            "device": opts["device"],
            "calibration": {k: v for k, v in settings.items() if v is not None},
        },
        opts["assignments"],
        base=base,
    )
    refuse_owned_changes(config, base)
    run_calibration(config, checkpoint, opts["chip"], opts["readback"], Path(opts["out"]))


def check_programmed_from(readback: str, checkpoint: str) -> None:
    """ValueError unless the readback's manifest names this checkpoint's bytes (its sha256)."""
    from noiseproof.calibration.readback import read_manifest
    from noiseproof.commands.export import file_digest

    named = (read_manifest(readback).get("checkpoint") or {}).get("sha256")
    if named is not None and named != file_digest(checkpoint):
        raise ValueError(
            f"readback: {readback} was exported from another checkpoint than {checkpoint} "
            f"(sha256 {str(named)[:12]}...)"
        )


def run_calibration(
    config: Any, checkpoint: str, index: int | None, readback: str | None, out: Path
) -> None:
    """Draw or read the chip, calibrate it, print the table, save the checkpoint."""
    import torch

    from noiseproof.analog import ir_drop_window
    from noiseproof.analog_ranges import AnalogRanges, evaluation_forward
    from noiseproof.calibration.chips import calibrated_module, chip_stream
    from noiseproof.calibration.fit import ChipEffects, applied, calibrate_chip, chip_forward
    from noiseproof.calibration.readback import readback_chip
    from noiseproof.calibration.settings import CalibrationConfig
    from noiseproof.calibration.split import calibration_split
    from noiseproof.chip import chip_params, detached
    from noiseproof.commands.export import file_digest
    from noiseproof.commands.from_checkpoint import checkpoint_label
    from noiseproof.commands.options import resolved_device
    from noiseproof.evaluation.clean import clean_metrics
    from noiseproof.experiments.jobs import run_task
    from noiseproof.experiments.results import is_percent, show, text_table
    from noiseproof.restore import model_from_checkpoint
    from noiseproof.seeding import derive_seed, global_rng
    from noiseproof.training.checkpoints import check_fits, load_checkpoint, save_checkpoint

    settings = config.calibration or CalibrationConfig()
    state, meta = load_checkpoint(checkpoint)
    device = resolved_device(config.device)
    model = model_from_checkpoint(state, meta, device)
    data = config.dataset.load().to(device)
    check_fits(meta, data.input_shape, data.num_outputs, checkpoint, data.vocabulary)
    task = run_task(config, data)
    seed = config.seeds[0]
    clean = {n: t.to(device) for n, t in detached(chip_params(model, config.chip)).items()}
    entry = config.noise[0]
    noise = entry.model.with_level(config.levels_of(entry)[0])
    try:
        x, y = calibration_split(data, settings.examples, seed)
        if readback is not None:
            check_programmed_from(readback, checkpoint)
            chip = readback_chip(readback, model, config.chip)
            source: dict[str, Any] = {"readback": str(Path(readback).resolve())}
            source["manifest_sha256"] = file_digest(Path(readback) / "manifest.json")
            base, index = derive_seed(seed, "readback"), 0
        else:
            assert index is not None  # --chip without --readback (one of them, checked)
            stream = chip_stream(noise, clean, seed, entry.label)
            chip = {name: t.clone() for name, t in stream.chip(index).items()}
            source = {"noise": noise.spec(), "noise_label": entry.label, "level": noise.level}
            source.update(seed=seed, chip=index)
            base = stream.seed
        window = ir_drop_window(config.forward, noise)
        analog = evaluation_forward(  # its calibrated ranges from the digital network, if any
            config.forward,
            model,
            list(clean),
            data.example(config.forward.calibration_examples) if config.forward else None,
            meta.get("analog_ranges"),
            window,
        )
    except ValueError as error:
        raise NoiseproofError(str(error)) from None

    def effects(use: str) -> ChipEffects | None:
        """The chip's analog forward, output noise from (base seed, `use`, chip): what
        `evaluate` draws for a simulated chip k with use 'forward'."""
        if analog is None or not analog.in_the_forward:
            return None
        gen = torch.Generator(device=device).manual_seed(derive_seed(base, use, index))
        return ChipEffects(analog, gen, window)

    with global_rng(base, "calibration", index, device=device):  # the user's own draws, if any
        calibration = calibrate_chip(
            model, clean, chip, x, y, settings, task, effects("calibration")
        )
    calibrated = calibrated_module(model, chip, calibration)
    test = (data.x_test, data.y_test, task, config.eval_batch_size)
    with chip_forward(model, list(clean), effects("forward")):
        tested_chip = clean_metrics(model, *test, params=chip)
    with applied(model, list(clean), calibration, effects("forward")):
        tested = clean_metrics(model, *test, params={**calibration.state, **chip})
    results = {"clean": clean_metrics(model, *test), "chip": tested_chip, "calibrated": tested}
    label = f"{checkpoint_label(meta)}-calibrated"
    record = {
        "settings": settings.model_dump(mode="json"),
        "source": source,
        "checkpoint_sha256": file_digest(checkpoint),
        "split": {"from": "train", "examples": settings.examples, "seed": seed},
        "test": results,
    }
    ranges = None if calibration.forward is None else calibration.forward.ranges
    if ranges is not None:
        assert isinstance(ranges, AnalogRanges)  # calibrate_chip attaches calibrated ones
        record["analog_ranges"] = ranges.to_dict()
    record["layers"] = list(calibration.columns)  # rebuilt around the model on load
    saved = {**meta, "label": label, "calibration": record}
    weights = {n: t.detach().cpu() for n, t in calibrated.state_dict().items()}
    save_checkpoint(out, weights, saved)
    metric = task.primary.name
    names = {"clean": "clean network", "chip": "chip", "calibrated": "calibrated chip"}
    rows = [[names[k], *(show(v[m], m) for m in v)] for k, v in results.items()]
    header = [f"{m} (%)" if is_percent(m) else m for m in results["clean"]]
    click.echo(text_table(["test split", *header], rows))
    logs.info(
        f"\ncalibrated on {settings.examples} training examples ({', '.join(settings.params)}"
        f", {settings.steps} steps): test {metric} {show(results['chip'][metric], metric)}"
        f" -> {show(results['calibrated'][metric], metric)}; wrote {out}"
    )

"""`noiseproof attack`: targeted parameter attack on trained checkpoints (Buechel et al. 2022).

For each checkpoint and each relative budget zeta: the accuracy of the worst chip found by
projected sign-gradient ascent on the task loss inside |theta* - theta| <= zeta * |theta|,
next to the accuracy of random relative Gaussian mismatch of the same zeta. Writes
attack.json, attack.csv and attack.png into --out. Every record names its `inputs`: the
checkpoint's digest, the data's fingerprint and the hash of the attack settings with the seed
and chip selection (noiseproof.experiments.provenance.analysis_inputs).
"""

from __future__ import annotations

import csv
import io
from pathlib import Path
from typing import Any

import click

from noiseproof import logs
from noiseproof.commands.options import device_option, numbers, resolved_device
from noiseproof.outputs import locks_output


def load_trained(
    checkpoints: tuple[str, ...],
    dataset: str | None,
    max_test: int | None,
    device: Any = None,
) -> tuple[list[tuple[str, Any, dict]], Any]:
    """[(label, model, meta)] for each checkpoint and the test data they are evaluated on,
    both on `device` (None: the CPU; the data moved once).

    The dataset is the first checkpoint's (or `dataset`), limited to `max_test` test examples;
    labels are the checkpoints' method labels (made unique with the file name if they repeat).
    Every checkpoint must fit the data's input shape and output count (checked before any
    forward pass). Each meta gets 'selection' (its chip selection) and 'provenance' (its
    checkpoint digest and the data's fingerprint, for the records' `inputs`).
    """
    from noiseproof.chip import ChipSelection
    from noiseproof.commands.from_checkpoint import checkpoint_label
    from noiseproof.data import datasets
    from noiseproof.experiments.provenance import checkpoint_digest, data_fingerprint
    from noiseproof.registry import validated
    from noiseproof.restore import model_from_checkpoint
    from noiseproof.training.checkpoints import check_fits, load_checkpoint

    loaded: list[tuple[str, Any, dict[str, Any]]] = []
    digests: list[str] = []
    for path in checkpoints:
        state, meta = load_checkpoint(path)
        label = checkpoint_label(meta)
        if any(label == other for other, _, _ in loaded):
            label = f"{label} ({Path(path).stem})"
        meta["selection"] = validated(ChipSelection, f"checkpoint {path} chip", **meta["chip"])
        digests.append(checkpoint_digest(state, meta))
        loaded.append((label, model_from_checkpoint(state, meta, device), meta))
    spec = loaded[0][2]["dataset"] if dataset is None else {"name": dataset}
    spec = dict(spec) if isinstance(spec, dict) else {"name": spec}
    if max_test is not None:
        spec["max_test"] = max_test
    data = datasets.create(spec).load()
    fingerprint = data_fingerprint(spec, data)
    for path, (_, _, meta), digest in zip(checkpoints, loaded, digests, strict=True):
        check_fits(meta, data.input_shape, data.num_outputs, path, data.vocabulary)
        meta["provenance"] = (digest, fingerprint)
    return loaded, data if device is None else data.to(device)


def records_csv(records: list[dict[str, Any]]) -> str:
    """Attack records as CSV: one row per (method, zeta)."""
    columns = [
        "method",
        "seed",
        "zeta",
        "n_steps",
        "examples",
        "clean_accuracy",
        "attacked_accuracy",
        "random_accuracy_mean",
        "random_accuracy_std",
        "random_accuracy_min",
        "random_transfers",
        "clean_loss",
        "attacked_loss",
        "seconds",
    ]
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=columns, lineterminator="\n")
    writer.writeheader()
    for r in records:
        writer.writerow(
            {
                **{k: r.get(k, "") for k in columns if not k.startswith("random_accuracy")},
                **{f"random_accuracy_{s}": r["random_accuracy"][s] for s in ("mean", "std", "min")},
            }
        )
    return buffer.getvalue()


@click.command(name="attack")
@click.argument("checkpoints", nargs=-1, required=True, type=click.Path())
@click.option(
    "--zetas", default="0.1", show_default=True, help="Relative budgets, comma-separated."
)
@click.option("--steps", type=int, default=10, show_default=True, help="Sign-ascent steps.")
@click.option("--transfers", type=int, default=10, show_default=True, help="Random chips per zeta.")
@click.option("--examples", type=int, help="Test examples the attack's gradient uses (all).")
@click.option("--max-test", type=int, help="Evaluate on at most this many test examples.")
@click.option("--dataset", help="Dataset name (default: the first checkpoint's).")
@click.option("--seed", type=int, default=0, show_default=True, help="Seed of all draws.")
@click.option(
    "--out", type=click.Path(), default="runs/attack", show_default=True, help="Output folder."
)
@device_option
@locks_output("out")
def command(checkpoints: tuple[str, ...], **opts: Any) -> None:
    """Targeted parameter attack vs random mismatch of the same relative size, per checkpoint."""

    import torch

    from noiseproof.atomic import write_json_atomic, write_text_atomic
    from noiseproof.evaluation.attack import (
        AttackConfig,
        attack_plot,
        attack_rows,
        targeted_attack,
    )
    from noiseproof.experiments.provenance import analysis_inputs
    from noiseproof.experiments.results import text_table
    from noiseproof.registry import validated

    config = validated(
        AttackConfig,
        "attack",
        zetas=numbers(opts["zetas"], "--zetas"),
        n_steps=opts["steps"],
        transfers=opts["transfers"],
        examples=opts["examples"],
    )
    device = resolved_device(opts["device"])
    loaded, data = load_trained(checkpoints, opts["dataset"], opts["max_test"], device)
    records = []
    for label, model, meta in loaded:
        settings = {"attack": config.model_dump(mode="json"), "seed": opts["seed"]}
        digest, fingerprint = meta["provenance"]
        inputs = analysis_inputs(digest, fingerprint, {**settings, "chip": meta["chip"]})
        for record in targeted_attack(
            model,
            data.x_test,
            data.y_test,
            config,
            generator=torch.Generator().manual_seed(opts["seed"]),
            selection=meta["selection"],
        ):
            records.append({"method": label, "seed": meta.get("seed"), "inputs": inputs, **record})
    out = Path(opts["out"])
    write_json_atomic(
        out / "attack.json",
        {
            "config": config.model_dump(mode="json"),
            "checkpoints": list(checkpoints),
            "attacks": records,
        },
    )
    write_text_atomic(out / "attack.csv", records_csv(records))
    attack_plot(records, out / "attack.png")
    header, rows = attack_rows(records)
    click.echo(text_table(header, rows))
    logs.info(f"\nwrote {out}/attack.json, attack.csv, attack.png")

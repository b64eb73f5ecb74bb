"""What records name as their inputs (data fingerprint, checkpoint digest, config hash), strict
JSON records, the config's lookups, and the one failure behaviour of the local executor."""

from __future__ import annotations

import json
import math

import pytest
import torch
from toy_jobs import toy_task

from helpers import MINIMAL_EXPERIMENT, tiny_data
from noiseproof.config import ExperimentConfig
from noiseproof.data.base import Dataset
from noiseproof.experiments.executors import LocalExecutor
from noiseproof.experiments.plan import EvalJob, plan_grid
from noiseproof.experiments.provenance import (
    checkpoint_digest,
    config_hash,
    data_fingerprint,
    sampled_rows,
)
from noiseproof.experiments.records import dumps, loads, strict_json

SPEC = {"name": "tiny"}


def with_split(data: Dataset, **tensors) -> Dataset:
    """`data` with some splits' tensors replaced."""
    fields = {name: getattr(data, name) for name in ("x_train", "y_train", "x_val", "y_val")}
    fields |= {"x_test": data.x_test, "y_test": data.y_test} | tensors
    return Dataset("tiny", **fields, num_classes=3)


def test_the_data_fingerprint_follows_spec_labels_and_sampled_rows():
    data = tiny_data()
    same = data_fingerprint(SPEC, tiny_data())
    assert data_fingerprint(SPEC, data) == same and len(same) == 64
    assert data_fingerprint({"name": "tiny", "max_train": 3}, data) != same
    y = data.y_test.clone()
    y[7] = (y[7] + 1) % 3  # one test label
    assert data_fingerprint(SPEC, with_split(data, y_test=y)) != same
    x = data.x_train.clone()
    x[-1] += 1.0  # the last training row is always read
    assert data_fingerprint(SPEC, with_split(data, x_train=x)) != same


def test_sampled_rows_are_first_last_and_a_stride():
    assert sampled_rows(0).tolist() == []
    assert sampled_rows(5).tolist() == [0, 1, 2, 3, 4]
    rows = sampled_rows(10_000).tolist()
    assert rows[0] == 0 and rows[-1] == 9999 and len(rows) <= 66
    assert rows[1] == math.ceil(10_000 / 64)


def test_the_checkpoint_digest_names_the_network_not_the_file():
    state = {"w": torch.arange(6.0).reshape(2, 3), "b": torch.zeros(2)}
    meta = {"model": {"name": "mlp"}, "label": "a", "train_seconds": 1.0}
    digest = checkpoint_digest(state, meta)
    assert checkpoint_digest(state, {**meta, "label": "b", "train_seconds": 9.0}) == digest
    assert checkpoint_digest(state, {**meta, "model": {"name": "cnn"}}) != digest
    changed = {**state, "b": torch.tensor([0.0, 1e-7])}
    assert checkpoint_digest(changed, meta) != digest


def test_the_config_hash_ignores_key_order():
    assert config_hash({"a": 1, "b": [1, 2]}) == config_hash({"b": (1, 2), "a": 1})
    assert config_hash({"a": 1}) != config_hash({"a": 2})


def test_records_are_strict_json_with_a_reason_for_each_missing_value():
    record = {
        "best_val": float("nan"),
        "best_val_reason": "no validation split: the last epoch was kept",
        "loss": float("inf"),
        "sums": [[1.0, float("nan")]],
        "fine": 0.5,
    }
    clean = strict_json(record)
    assert clean["best_val"] is None and clean["best_val_reason"].startswith("no validation")
    assert clean["loss"] is None and clean["loss_reason"] == "not a finite number (inf)"
    assert clean["sums"] == [[1.0, None]] and "sums_reason" in clean
    assert clean["fine"] == 0.5
    text = dumps(record)
    assert "NaN" not in text and "Infinity" not in text
    assert loads(text) == clean
    with pytest.raises(ValueError, match="NaN is not strict JSON"):
        loads(json.dumps({"a": float("nan")}))


def test_the_config_answers_by_label():
    config = ExperimentConfig.parse(
        {
            **MINIMAL_EXPERIMENT,
            "methods": ["standard", {"name": "dropout", "label": "drop"}],
            "noise": ["relative_gaussian", {"name": "lognormal", "levels": [0.2, 0.4]}],
        }
    )
    assert config.method("drop").method.registered_name == "dropout"
    assert config.noise_entry("lognormal").levels == (0.2, 0.4)
    with pytest.raises(KeyError, match="'dropout'"):
        config.method("dropout")
    sweeps = dict(config.sweeps())
    assert [(level, model.level) for level, model in sweeps["lognormal"]] == [
        (0.2, 0.2),
        (0.4, 0.4),
    ]
    jobs = [j for j in plan_grid(["standard"], [0], config.sweeps(), 4) if isinstance(j, EvalJob)]
    assert [(j.noise, j.level, j.noise_model.level) for j in jobs] == [
        ("relative_gaussian", 0.1, 0.1),
        ("lognormal", 0.2, 0.2),
        ("lognormal", 0.4, 0.4),
    ]


def test_the_local_executor_keeps_going_and_reports_failures_by_name():
    jobs = plan_grid(["a", "broken"], [1], [("g", [0.1])], transfers=6, transfers_per_job=3)
    results = {}
    failures = LocalExecutor().run(jobs, toy_task, (5,), results.__setitem__)
    assert sorted(f.line() for f in failures) == [
        "evaluate broken seed 1 g=0.1 chips 0-3: not run: train broken seed 1 failed",
        "evaluate broken seed 1 g=0.1 chips 3-6: not run: train broken seed 1 failed",
        "train broken seed 1: ValueError: training broke",
    ]
    assert sorted(job.name for job in results) == [
        "evaluate a seed 1 g=0.1 chips 0-3",
        "evaluate a seed 1 g=0.1 chips 3-6",
        "train a seed 1",
    ]

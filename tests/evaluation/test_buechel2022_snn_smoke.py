"""examples/buechel2022-snn/config.yaml runs end to end at a tiny budget (every method, both
noise entries, the neuron-parameter chip of table 2): the config stays valid."""

from __future__ import annotations

from pathlib import Path

import torch

from noiseproof.chip import ChipSelection
from noiseproof.config import ExperimentConfig, read_yaml
from noiseproof.data import load_dataset
from noiseproof.evaluation.transfers import run_transfers
from noiseproof.experiments.compare import run_compare
from noiseproof.models import build_model
from noiseproof.noise import create_noise

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "buechel2022-snn"


def test_config_runs_at_tiny_budget(tmp_path):
    raw = read_yaml(EXAMPLE / "config.yaml")
    raw["dataset"].update(max_train=200, max_test=50)
    raw["train"]["epochs"] = 1
    raw["model"]["hidden"] = 16
    raw.update(transfers=2, levels=[0.0, 0.7])
    results = run_compare(
        ExperimentConfig.parse(raw), tmp_path / "run", progress=False, log=lambda _: None
    )
    cells = {(j["method"], j["noise"], j["level"]) for j in results["jobs"]}
    assert len(cells) == 4 * 2 * 2
    assert all(0.0 <= j["accuracy"]["mean"] <= 1.0 for j in results["jobs"])


def test_neuron_chip_of_table_2_selects_every_neuron_parameter():
    chip = read_yaml(EXAMPLE / "chip_neurons.yaml")
    raw = read_yaml(EXAMPLE / "config.yaml")
    selection = ChipSelection(**chip["chip"])
    data = load_dataset({**raw["dataset"], "max_train": 50, "max_test": 20})
    model = build_model({**raw["model"], "hidden": 8}, data.input_shape, data.num_classes)
    names = set(selection.names(model))
    neurons = {"lif.tau_mem", "lif.tau_adapt", "lif.threshold", "lif.adaptation", "out.tau_mem"}
    assert neurons <= names
    result = run_transfers(
        model,
        create_noise({"name": "relative_gaussian", "zeta": 0.7}),
        data.x_test,
        data.y_test,
        3,
        torch.Generator().manual_seed(0),
        selection=selection,
    )
    assert result.transfers == 3

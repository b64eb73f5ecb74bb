"""examples/correctnet2023/ablation.py: the step table of a compare run of ablation.yaml, on a
results.json whose per-chip accuracies are known (each method = standard + a fixed shift)."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[2] / "examples" / "correctnet2023" / "ablation.py"
SHIFT = {
    "standard": 0.0,
    "lipschitz": -0.05,
    "noise": 0.30,
    "lipschitz+noise": 0.28,
    "correctnet": 0.31,
}


def load():
    spec = importlib.util.spec_from_file_location("correctnet_ablation", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def results() -> dict:
    jobs = []
    for method, shift in SHIFT.items():
        for seed in (0, 1):
            chips = [0.30 + 0.01 * k + 0.02 * seed + shift for k in range(5)]
            jobs.append(
                {
                    "method": method,
                    "seed": seed,
                    "noise": "lognormal",
                    "level": 1.0,
                    "per_chip": {"accuracy": chips},
                    "clean": {"accuracy": 0.98},
                }
            )
    return {"jobs": jobs}


def test_steps_are_the_paired_differences_and_the_gap_is_stated(tmp_path, capsys):
    (tmp_path / "results.json").write_text(json.dumps(results()))
    text = load().main([str(tmp_path)])
    assert capsys.readouterr().out == text == (tmp_path / "ablation.md").read_text()
    rows = {line.split(" | ")[1]: line for line in text.splitlines() if " -> " in line}
    # a constant shift per chip: the paired difference and both interval ends equal it
    assert "| -5.00 [-5.00, -5.00] |" in rows["standard -> lipschitz"]
    assert "| -2.00 [-2.00, -2.00] |" in rows["noise -> lipschitz+noise"]
    assert "| +3.00 [+3.00, +3.00] |" in rows["lipschitz+noise -> correctnet"]
    best = 100 * (0.30 + 0.02 + 0.01 + 0.31) / 0.98  # chips 0.02, seeds 0.01 on average
    assert f"Best: correctnet, {best:.1f} %" in text
    assert f"{95 - best:.1f} points" in text


def test_a_folder_without_results_is_one_line(tmp_path, capsys):
    with pytest.raises(SystemExit) as stop:
        load().main([str(tmp_path)])
    assert stop.value.code == 2
    assert "holds no results.json" in capsys.readouterr().err

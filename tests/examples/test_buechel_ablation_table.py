"""examples/buechel2022/ablation.py on compare results whose per-chip accuracies are known."""

from __future__ import annotations

import importlib.util
import json
import statistics
from pathlib import Path

import pytest
from scipy import stats

SCRIPT = Path(__file__).resolve().parents[2] / "examples" / "buechel2022" / "ablation.py"


def load():
    spec = importlib.util.spec_from_file_location("buechel_ablation", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def write(folder: Path, shifts: dict[int, float], level: float = 0.7, clean: float = 0.80) -> Path:
    """A run whose seed s has chips 0.50, 0.52, 0.54 plus shifts[s], clean accuracy `clean`."""
    folder.mkdir()
    jobs = [
        {
            "seed": seed,
            "level": level,
            "per_chip": {"accuracy": [0.50 + shift, 0.52 + shift, 0.54 + shift]},
            "clean": {"accuracy": clean},
        }
        for seed, shift in shifts.items()
    ]
    (folder / "results.json").write_text(json.dumps({"jobs": jobs}))
    return folder


def test_differences_are_seed_paired_with_a_t_interval(tmp_path):
    base = write(tmp_path / "baseline", {0: 0.0, 1: 0.01, 2: -0.01})
    same_shift = write(tmp_path / "plus3", {0: 0.03, 1: 0.04, 2: 0.02})
    mixed = write(tmp_path / "mixed", {0: 0.01, 1: 0.05, 2: 0.0}, clean=0.78)
    text = load().main([str(base), str(same_shift), str(mixed)])
    rows = {line.split(" | ")[0].strip("| "): line for line in text.splitlines()}
    assert "52.00 ± 1.00 (52.00, 53.00, 51.00)" in rows["baseline"]
    # a constant shift per seed: the paired difference has no spread, its interval is a point
    assert "+3.00 ± 0.00 (+3.00, +3.00, +3.00) | [+3.00, +3.00]" in text
    change = [1.0, 4.0, 1.0]
    half = stats.t.ppf(0.975, 2) * statistics.stdev(change) / 3**0.5
    mean = statistics.fmean(change)
    assert f"[{mean - half:+.2f}, {mean + half:+.2f}]" in rows["mixed"].split(" | ")[2]
    # the clean accuracies pair by seed too: 2 points lower on every seed
    assert rows["plus3"].endswith("| +0.00 ± 0.00 (+0.00, +0.00, +0.00) | [+0.00, +0.00] |")
    assert rows["mixed"].endswith("| -2.00 ± 0.00 (-2.00, -2.00, -2.00) | [-2.00, -2.00] |")


def test_runs_that_do_not_pair_are_refused(tmp_path, capsys):
    base = write(tmp_path / "baseline", {0: 0.0, 1: 0.0})
    other = write(tmp_path / "other", {0: 0.0, 2: 0.0})
    with pytest.raises(SystemExit, match="is not at zeta 0.7 on seeds"):
        load().main([str(base), str(other)])
    with pytest.raises(SystemExit) as stop:
        load().main([str(base), str(tmp_path / "missing")])
    assert stop.value.code == 2 and "holds no results.json" in capsys.readouterr().err

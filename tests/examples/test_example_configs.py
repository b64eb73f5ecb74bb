"""Every example config parses and validates as the command that runs it reads it: a `compare`
config over the built-in default, a `correct` config with its `correct:` section split off.
Nothing is trained: data paths the user supplies (CIFAR folders) are not read here."""

from __future__ import annotations

from pathlib import Path

import pytest

from noiseproof.commands.correct import split_config
from noiseproof.commands.options import build_config
from noiseproof.config import ExperimentConfig

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
CONFIGS = sorted(EXAMPLES.glob("*/*.yaml"))


def test_there_are_example_configs():
    assert len(CONFIGS) >= 20


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_example_config_validates(path):
    if "correct:" in path.read_text():
        raw, _, settings = split_config(str(path), ())
        config = ExperimentConfig.parse(raw)
        assert settings.placement is not None
    else:
        config = build_config(str(path), {}, ())
    assert config.methods and config.noise

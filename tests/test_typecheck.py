"""The package type-checks: `mypy` with the configuration in pyproject.toml ([tool.mypy]: the
pydantic plugin, the public API fully annotated, a listed baseline of modules still to fix)
exits cleanly on src/noiseproof."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_mypy_passes_on_the_package():
    done = subprocess.run(
        [sys.executable, "-m", "mypy"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-2000:]
    assert done.stdout.startswith("Success: no issues found"), done.stdout[-2000:]

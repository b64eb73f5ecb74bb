"""The README's Python section runs as shown (in a fresh interpreter, one thread)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

README = Path(__file__).resolve().parents[1] / "README.md"


def python_section_code() -> str:
    """The first ```python block under '## Python API'."""
    section = README.read_text().split("## Python API", 1)[1]
    return re.search(r"```python\n(.*?)```", section, re.DOTALL).group(1)


def test_python_section_runs_and_prints_the_table_it_shows(tmp_path):
    script = tmp_path / "snippet.py"
    script.write_text(python_section_code())
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    done = subprocess.run(
        [sys.executable, str(script)], capture_output=True, text=True, env=env, cwd=tmp_path
    )
    assert done.returncode == 0, done.stderr
    lines = done.stdout.strip().splitlines()
    assert lines[0].split()[1:3] == ["{'threshold':", "0.95,"]
    assert lines[1].split() == ["method", "level", "accuracy_mean", "accuracy_min"]
    rows = [line.split()[1:3] for line in lines[2:]]
    assert rows == [
        [method, level]
        for method in ("standard", "noise_injection")
        for level in ("0.0", "0.5", "1.0")
    ]
    assert not list(tmp_path.glob("runs*")), "the in-memory compare wrote a folder"

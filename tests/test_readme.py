"""The README: its Python section runs as shown (in a fresh interpreter, one thread), and it
stays a short front page."""

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


def test_readme_stays_short_and_opens_with_its_contents():
    """The README is the front page: at most 250 lines, a table of contents near the top whose
    every entry names a section the README has."""
    text = README.read_text()
    assert len(text.splitlines()) <= 250
    contents = text.split("## Contents", 1)[1].split("\n## ", 1)[0]
    headings = {line[3:] for line in text.splitlines() if line.startswith("## ")}
    entries = [
        line.split("](#")[0].lstrip("- [") for line in contents.splitlines() if "](#" in line
    ]
    assert entries and all(
        entry.replace("`", "") in {h.replace("`", "") for h in headings} for entry in entries
    ), entries

"""Start-up stays light: `--help` of the CLI and of every command imports neither torch nor
scikit-learn nor matplotlib, and loads no plugin (measured by what lands in sys.modules)."""

from __future__ import annotations

import subprocess
import sys

COMMANDS = [
    "",
    "compare",
    "train",
    "evaluate",
    "list",
    "attack",
    "landscape",
    "correct",
    "fit-device",
    "export",
    "cost",
]
HEAVY = ["torch", "sklearn", "matplotlib", "numpy", "scipy", "noiseproof.config", "pydantic"]

CHECK = """
import sys
from noiseproof.cli import cli
from noiseproof import plugins
for command in {commands!r}:
    args = [command, "--help"] if command else ["--help"]
    try:
        cli.main(args, prog_name="noiseproof", standalone_mode=False)
    except SystemExit:
        pass
loaded = [name for name in {heavy!r} if name in sys.modules]
assert not loaded, loaded
assert not plugins._entry_points_loaded
print("ok")
"""


def test_help_of_every_command_imports_nothing_heavy():
    done = subprocess.run(
        [sys.executable, "-c", CHECK.format(commands=COMMANDS, heavy=HEAVY)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip().endswith("ok")
    assert "Usage: noiseproof compare" in done.stdout


def test_scikit_learn_only_inside_its_two_loaders():
    code = (
        "import sys, noiseproof.data, noiseproof.config\n"
        "assert 'sklearn' not in sys.modules\n"
        "from noiseproof.data import load_dataset\n"
        "load_dataset({'name': 'moons', 'n_train': 40, 'n_val': 10, 'n_test': 10})\n"
        "assert 'sklearn' in sys.modules\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr

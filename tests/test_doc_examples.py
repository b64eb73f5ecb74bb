"""Every code block of README.md and docs/ that a user would paste runs, as written.

Collected: each ```python block, and each ```bash / ```sh block whose first command is
`noiseproof` or `.venv/bin/noiseproof` (after optional `VAR=value` assignments). Other blocks
(YAML, output, `pip install`, `torchrun`, scripts of examples/) are not run.

A block runs in a fresh temporary folder that holds links to the repository's `examples/` and
`.venv/`, with the venv's `noiseproof` first on the PATH and one thread. HTML comments on the
lines just above a block change how it runs:

    <!-- skip: why -->                    not run (the reason is shown)
    <!-- shorten: A => B; C => D -->      run with each A replaced by B (each A must occur),
                                          for blocks that would take minutes as written
    <!-- file: name.py -->                written to name.py in the folder, not run
    <!-- continues -->                    runs in the folder of the block before it on the page,
                                          after it (a chain is one test)

A python block that defines `test_*` functions has them called after it runs. A block that
fails because of a bug in noiseproof is marked `<!-- skip: ... -->` naming the bug, never
edited to dodge it.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]
FENCE = re.compile(
    r"^(?P<indent>[ ]*)```(?P<lang>[\w-]*)[^\n]*\n(?P<body>.*?)^(?P=indent)```[ ]*$",
    re.MULTILINE | re.DOTALL,
)
MARK = re.compile(r"^\s*<!--\s*(skip|shorten|continues|file)\s*(?::(.*?))?-->\s*$")
ASSIGNMENT = re.compile(r"^(\w+=\S*\s+)+")
COMMANDS = ("noiseproof ", ".venv/bin/noiseproof ")
BLOCK_TIMEOUT = 300

RUNNER = """\
import runpy, sys
namespace = runpy.run_path(sys.argv[1], run_name="__main__")
for name, value in list(namespace.items()):
    if name.startswith("test_") and callable(value):
        value()
"""


@dataclass
class Block:
    page: Path
    line: int
    lang: str
    code: str
    marks: dict[str, str] = field(default_factory=dict)

    @property
    def where(self) -> str:
        return f"{self.page.relative_to(ROOT)}:{self.line}"

    @property
    def shell(self) -> bool:
        return self.lang in ("bash", "sh", "shell")

    @property
    def runnable(self) -> bool:
        if self.lang == "python":
            return True
        if not self.shell:
            return False
        lines = [ln.strip() for ln in self.code.splitlines()]
        first = next((ln for ln in lines if ln and not ln.startswith("#")), "")
        return ASSIGNMENT.sub("", first).startswith(COMMANDS)

    def source(self) -> str:
        """The code to run: with the `shorten` replacements made."""
        code = self.code
        for pair in filter(None, (p.strip() for p in self.marks.get("shorten", "").split(";"))):
            old, sep, new = pair.partition("=>")
            old, new = old.strip(), new.strip()
            assert sep and old, f"{self.where}: shorten expects 'A => B', got {pair!r}"
            assert old in code, f"{self.where}: shorten: {old!r} is not in the block"
            code = code.replace(old, new)
        return code


def marks_above(text: str, start: int) -> dict[str, str]:
    """The marker comments on the lines just above position `start` (blank lines between)."""
    marks: dict[str, str] = {}
    for line in reversed(text[:start].splitlines()):
        if not line.strip():
            continue
        match = MARK.match(line)
        if not match:
            break
        marks[match.group(1)] = (match.group(2) or "").strip()
    return marks


def blocks(page: Path) -> list[Block]:
    text = page.read_text()
    found = []
    for match in FENCE.finditer(text):
        indent = len(match.group("indent"))
        body = "".join(line[indent:] for line in match.group("body").splitlines(keepends=True))
        found.append(
            Block(
                page,
                text.count("\n", 0, match.start()) + 1,
                match.group("lang"),
                body,
                marks_above(text, match.start()),
            )
        )
    return found


def chains() -> list[list[Block]]:
    """Runnable blocks grouped by `continues`: one list per test."""
    out: list[list[Block]] = []
    for page in PAGES:
        previous: list[Block] | None = None
        for block in blocks(page):
            if not (block.runnable or "file" in block.marks):
                assert "continues" not in block.marks, (
                    f"{block.where}: continues a block that is not run"
                )
                continue
            if "continues" in block.marks:
                assert previous is not None, (
                    f"{block.where}: continues, but no block runs before it"
                )
                previous.append(block)
            else:
                previous = [block]
                out.append(previous)
    return out


NEEDS = {
    "english-text": (
        Path("/usr/share/doc/jargon-text/jargon.txt.gz"),
        "the Debian package jargon-text (setup.sh installs it)",
    ),
}
"""Data a block may name that only the full setup installs: the block is skipped without it."""


def missing_data(block: Block) -> str | None:
    for word, (path, what) in NEEDS.items():
        if word in block.code and not path.exists():
            return f"needs {what}"
    return None


def covered_elsewhere(block: Block) -> str | None:
    """Blocks another test runs with stricter checks of their output."""
    from test_readme import python_section_code

    if block.page.name == "README.md" and block.code == python_section_code():
        return "tests/test_readme.py runs this block and checks what it prints"
    return None


CHAINS = chains()


def folder(tmp_path: Path) -> Path:
    for name in ("examples", ".venv"):
        if (ROOT / name).exists():
            (tmp_path / name).symlink_to(ROOT / name)
    return tmp_path


def run(block: Block, cwd: Path, index: int) -> None:
    env = {
        **os.environ,
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
        "OMP_NUM_THREADS": "1",
        "MKL_NUM_THREADS": "1",
        "MPLBACKEND": "Agg",
        "PYTHONDONTWRITEBYTECODE": "1",
    }
    code = block.source()
    if "file" in block.marks:
        (cwd / block.marks["file"]).write_text(code)
        return
    if block.lang == "python":
        script = cwd / f"block_{index}.py"
        script.write_text(code)
        runner = cwd / "_run_block.py"
        runner.write_text(RUNNER)
        command = [sys.executable, str(runner), str(script)]
    else:
        command = ["bash", "-e", "-o", "pipefail", "-c", code]
    started = time.perf_counter()
    done = subprocess.run(
        command, cwd=cwd, env=env, capture_output=True, text=True, timeout=BLOCK_TIMEOUT
    )
    seconds = time.perf_counter() - started
    output = (done.stdout + done.stderr)[-4000:]
    assert done.returncode == 0, f"{block.where} failed (exit {done.returncode}):\n{output}"
    print(f"{block.where}: {seconds:.1f} s")


@pytest.mark.parametrize("chain", CHAINS, ids=[chain[0].where for chain in CHAINS])
def test_block_runs(chain: list[Block], tmp_path: Path) -> None:
    cwd = folder(tmp_path)
    for index, block in enumerate(chain):
        reason = block.marks.get("skip") or covered_elsewhere(block) or missing_data(block)
        if reason is not None or "skip" in block.marks:
            if index == 0:
                pytest.skip(f"{block.where}: {reason or 'marked skip'}")
            break
        run(block, cwd, index)


def test_blocks_are_found() -> None:
    """The collection itself: the pages have runnable blocks and every marker is known."""
    assert len(CHAINS) >= 10
    for page in PAGES:
        for line_no, line in enumerate(page.read_text().splitlines(), 1):
            if re.match(r"^\s*<!--\s*(skip|shorten|continues|file)\b", line):
                assert MARK.match(line), f"{page.relative_to(ROOT)}:{line_no}: malformed marker"

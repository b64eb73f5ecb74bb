"""What users read names nothing they cannot follow.

README.md, docs/, the examples (READMEs, configs, scripts) and the package's source (help
texts, error messages, docstrings) must not point to paths outside the repository (private
notes), to issue numbers of a tracker users do not see, or to how, when or by whom a run was
scheduled. A date and the command that produced a number are fine: "Since the chip-indexed
random streams (2026-12-01, see docs/monte-carlo.md) ..." rather than "Since issue 14 ...".
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

FORBIDDEN = {
    r"\.\./shared\b": "a path outside the repository",
    r"/work/shared\b": "a path outside the repository",
    r"\bshared/docs\b": "a path outside the repository",
    r"\bmethods\.md\b": "private notes users do not have: state the fact and cite the paper",
    r"\bissues? ?#?\d+": "an issue number: say what changed and when",
    r"\(issues?\b": "an issue reference: say what changed and when",
    r"\bthis session\b": "how the run was scheduled",
    r"\bsession's deadline\b": "how the run was scheduled",
    r"\bother helpers\b": "who ran it",
    r"\bhelpers' runs?\b": "who ran it",
    r"\bheavy-job lock\b": "how the run was scheduled",
    r"\bdevice tool\b": "how the run was scheduled",
}
PATTERN = re.compile("|".join(f"(?:{p})" for p in FORBIDDEN), re.IGNORECASE)
SUFFIXES = {".md", ".yaml", ".yml", ".py", ".sh", ".toml", ".txt"}


def user_facing_files() -> list[Path]:
    files = [ROOT / "README.md", ROOT / "mkdocs.yml"]
    for folder in ("docs", "examples"):
        files += [
            path
            for path in sorted((ROOT / folder).rglob("*"))
            if path.is_file() and path.suffix in SUFFIXES
        ]
    files += sorted((ROOT / "src" / "noiseproof").rglob("*.py"))
    return [path for path in files if path.is_file()]


def offences(path: Path) -> list[str]:
    found = []
    for number, line in enumerate(path.read_text(errors="replace").splitlines(), 1):
        for match in PATTERN.finditer(line):
            why = next(w for p, w in FORBIDDEN.items() if re.fullmatch(p, match.group(0), re.I))
            found.append(f"{path.relative_to(ROOT)}:{number}: {match.group(0)!r} ({why})")
    return found


def test_no_user_facing_file_names_private_paths_issues_or_scheduling():
    found = [offence for path in user_facing_files() for offence in offences(path)]
    assert not found, "rewrite for a user:\n" + "\n".join(found)


@pytest.mark.parametrize(
    "line",
    [
        "see /work/shared/docs/methods.md",
        "as in ../shared/notes",
        "Since issue 14 the Monte Carlo",
        "(issue: 7-10)",
        "## Table 1 (issue 15)",
        "other jobs of this session running",
        "cancelled at this session's deadline",
        "shared with other helpers' runs",
    ],
)
def test_the_patterns_catch_what_they_are_for(line):
    assert PATTERN.search(line), line


def test_the_patterns_leave_plain_words_alone():
    for line in [
        "A date and the command that produced a number are fine.",
        "One progress helper for training and transfers.",
        "The tissue of the issue is that it takes time.",
        "noiseproof.methods: training methods, registered by name",
    ]:
        assert not PATTERN.search(line), line

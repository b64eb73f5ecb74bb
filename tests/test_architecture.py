"""The package's shape: no import cycle, every module importable alone, layers that point down.

Modules are listed by walking src/noiseproof with pkgutil (never by hand); imports are read
from the source (ast), so the static checks import nothing.
"""

from __future__ import annotations

import ast
import pkgutil
import subprocess
import sys
from pathlib import Path

import pytest

import noiseproof

ROOT = Path(noiseproof.__file__).parent
SKIPPED = {"noiseproof.__main__"}  # importing it runs the command line


def walk(path: Path = ROOT, prefix: str = "noiseproof") -> dict[str, Path]:
    """Every module of the package: dotted name -> source file (packages: their __init__.py)."""
    found = {prefix: path / "__init__.py"}
    for info in pkgutil.iter_modules([str(path)]):
        name = f"{prefix}.{info.name}"
        if info.ispkg:
            found |= walk(path / info.name, name)
        else:
            found[name] = path / f"{info.name}.py"
    return found


MODULES = walk()


def is_type_checking(node: ast.If) -> bool:
    """`if TYPE_CHECKING:` or `if typing.TYPE_CHECKING:`."""
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def imported(module: str, node: ast.Import | ast.ImportFrom) -> list[str]:
    """Names of the noiseproof modules an import statement inside `module` loads directly."""
    if isinstance(node, ast.Import):
        names = [alias.name for alias in node.names]
    else:
        base = node.module or ""
        if node.level:  # relative: from the importer's package
            package = module if MODULES[module].name == "__init__.py" else module.rpartition(".")[0]
            parts = package.split(".")
            parts = parts[: len(parts) - node.level + 1]
            base = ".".join([*parts, base] if base else parts)
        names = [
            f"{base}.{alias.name}" if f"{base}.{alias.name}" in MODULES else base
            for alias in node.names
        ]
    return [name for name in names if name in MODULES]


def statements(tree: ast.Module, *, module_level: bool, type_checking: bool) -> list[ast.stmt]:
    """Import statements of a module: at module level only (also inside module-level if/try
    blocks) or anywhere; `if TYPE_CHECKING:` blocks skipped unless `type_checking`."""
    found: list[ast.stmt] = []

    def visit(body: list[ast.stmt]) -> None:
        for node in body:
            if isinstance(node, ast.Import | ast.ImportFrom):
                found.append(node)
            elif isinstance(node, ast.If):
                if type_checking or not is_type_checking(node):
                    visit(node.body)
                visit(node.orelse)
            elif isinstance(node, ast.Try):
                for block in (node.body, node.orelse, node.finalbody):
                    visit(block)
                for handler in node.handlers:
                    visit(handler.body)
            elif (
                isinstance(node, ast.With)
                or not module_level
                and isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef)
            ):
                visit(node.body)

    visit(tree.body)
    return found


def tree(module: str) -> ast.Module:
    return ast.parse(MODULES[module].read_text(), filename=str(MODULES[module]))


def ancestors(module: str) -> list[str]:
    """The packages Python imports before `module`: 'a.b.c' -> ['a', 'a.b']."""
    parts = module.split(".")
    return [".".join(parts[:i]) for i in range(1, len(parts))]


def import_graph() -> dict[str, set[str]]:
    """module -> the noiseproof modules its module-level imports execute, `if TYPE_CHECKING:`
    blocks skipped. Importing 'a.b.c' also runs the packages 'a' and 'a.b' first (their
    __init__ may import more), except those the importer is itself inside: they are already
    being imported when it runs."""
    graph: dict[str, set[str]] = {}
    for module in MODULES:
        own = set(ancestors(module))
        edges: set[str] = set()
        for node in statements(tree(module), module_level=True, type_checking=False):
            for target in imported(module, node):
                edges |= {m for m in [*ancestors(target), target] if m not in own and m != module}
        graph[module] = edges
    return graph


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One import cycle as a path [a, b, ..., a], or None (depth-first search)."""
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        path.append(node)
        for target in sorted(graph.get(node, ())):
            if state.get(target) == 1:
                return [*path[path.index(target) :], target]
            if target not in state and (cycle := visit(target)):
                return cycle
        path.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state and (cycle := visit(node)):
            return cycle
    return None


def test_the_walk_finds_the_package():
    assert len(MODULES) > 50
    for name in ("noiseproof.cli", "noiseproof.methods.base", "noiseproof.training.trainer"):
        assert name in MODULES
    assert not any(name.startswith("noiseproof.correctnet") for name in MODULES)


def test_the_cycle_finder_finds_a_cycle():
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}
    assert find_cycle(graph) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set()}) is None


def test_no_import_cycle():
    cycle = find_cycle(import_graph())
    assert cycle is None, "import cycle: " + " -> ".join(cycle)


IMPORT_EACH_ALONE = """
import importlib, sys, traceback
failures = []
for name in sys.argv[1:]:
    for loaded in [m for m in sys.modules if m == "noiseproof" or m.startswith("noiseproof.")]:
        del sys.modules[loaded]
    try:
        importlib.import_module(name)
    except BaseException as error:
        last = traceback.extract_tb(error.__traceback__)[-1]
        failures.append(f"{name}: {type(error).__name__}: {error} ({last.filename}:{last.lineno})")
print("\\n".join(failures))
sys.exit(1 if failures else 0)
"""


def test_every_module_imports_on_its_own():
    """One subprocess (torch imported once); before each module every noiseproof module is
    dropped from sys.modules, so each is imported first, as a user's script would."""
    names = sorted(set(MODULES) - SKIPPED)
    result = subprocess.run(
        [sys.executable, "-c", IMPORT_EACH_ALONE, *names],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, "modules failing to import alone:\n" + (
        result.stdout + result.stderr
    )


def imports_anywhere(module: str) -> set[str]:
    """Every noiseproof module `module` imports, wherever the import statement is."""
    found: set[str] = set()
    for node in statements(tree(module), module_level=False, type_checking=True):
        found |= set(imported(module, node))
    return found


def under(module: str, package: str) -> bool:
    return module == package or module.startswith(package + ".")


@pytest.mark.parametrize(
    "layer, forbidden",
    [
        (
            "noiseproof.evaluation",
            (
                "noiseproof.experiments",
                "noiseproof.methods",
                "noiseproof.training",
                "noiseproof.commands",
                "noiseproof.cli",
            ),
        ),
        (
            "noiseproof.training",
            ("noiseproof.experiments", "noiseproof.commands", "noiseproof.cli"),
        ),
    ],
)
def test_lower_layers_import_nothing_above_them(layer, forbidden):
    wrong = [
        f"{module} imports {target}"
        for module in MODULES
        if under(module, layer)
        for target in sorted(imports_anywhere(module))
        if any(under(target, package) for package in forbidden)
    ]
    assert not wrong, "\n".join(wrong)


def test_the_trainer_needs_no_method_module():
    """A method (correctnet) trains with the trainer, so the trainer must not run the methods
    package, which imports every method: only TYPE_CHECKING imports of it are allowed."""
    graph = import_graph()
    for module in MODULES:
        if under(module, "noiseproof.training"):
            assert not any(under(t, "noiseproof.methods") for t in graph[module]), module


def method_class_names() -> set[str]:
    """Classes defined in the method modules (registered methods and their helpers, such as
    correctnet's Compensated wrapper), the Method interface excepted."""
    names = set()
    for module in MODULES:
        if under(module, "noiseproof.methods") and module != "noiseproof.methods.base":
            names |= {node.name for node in tree(module).body if isinstance(node, ast.ClassDef)}
    return names


def test_experiments_know_no_method():
    """experiments/ reaches methods only through the interface and the registry, and names no
    method class (a method's defaults such as 'standard' in a default list are configuration)."""
    allowed = {"noiseproof.methods", "noiseproof.methods.base"}
    classes = method_class_names()
    assert {"CorrectNet", "Compensated", "CompensationSpec", "Adversarial"} <= classes
    wrong = []
    for module in MODULES:
        if not under(module, "noiseproof.experiments"):
            continue
        wrong += [
            f"{module} imports {target}"
            for target in sorted(imports_anywhere(module))
            if under(target, "noiseproof.methods") and target not in allowed
        ]
        for node in ast.walk(tree(module)):
            if isinstance(node, ast.Name):
                word = node.id
            elif isinstance(node, ast.Attribute):
                word = node.attr
            elif isinstance(node, ast.alias):
                word = node.asname or node.name.rpartition(".")[2]
            else:
                continue
            if word in classes:
                wrong.append(f"{module}: names the method class {word!r}")
    assert not wrong, "\n".join(wrong)


def test_no_function_local_imports_hide_a_cycle():
    """Imports of noiseproof modules sit at module level (or under TYPE_CHECKING); only the lazy
    public API and the command line import inside functions, to start fast."""
    wrong = []
    for module in MODULES:
        if module in ("noiseproof", "noiseproof.cli") or under(module, "noiseproof.commands"):
            continue
        parsed = tree(module)
        at_top = {id(n) for n in statements(parsed, module_level=True, type_checking=True)}
        for node in statements(parsed, module_level=False, type_checking=True):
            if id(node) not in at_top and imported(module, node):
                wrong.append(f"{module} line {node.lineno}: {ast.unparse(node)}")
    assert not wrong, "function-local imports of noiseproof modules:\n" + "\n".join(wrong)

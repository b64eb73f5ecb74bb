"""Every public name of `noiseproof` carries a short runnable example in its docstring, and
every example runs (doctest) with the output it shows."""

from __future__ import annotations

import doctest
import inspect

import pytest

import noiseproof as nf

PUBLIC = sorted(nf.__all__)


def _examples(name: str) -> list[doctest.DocTest]:
    """The doctests of one public name's own docstring (a class: its own, not its methods')."""
    obj = getattr(nf, name)
    finder = doctest.DocTestFinder(recurse=False)
    module = inspect.getmodule(obj)
    return [test for test in finder.find(obj, name, module=module) if test.examples]


@pytest.mark.parametrize("name", PUBLIC)
def test_every_public_name_has_an_example(name):
    assert _examples(name), f"noiseproof.{name}'s docstring has no runnable example (>>>)"


@pytest.mark.parametrize("name", PUBLIC)
def test_docstring_example_runs(name):
    runner = doctest.DocTestRunner(optionflags=doctest.NORMALIZE_WHITESPACE)
    for test in _examples(name):
        runner.run(test)
    summary = runner.summarize(verbose=False)
    assert summary.failed == 0, f"{name}: {summary.failed} of {summary.attempted} examples failed"

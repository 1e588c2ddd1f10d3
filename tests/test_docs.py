"""Every docstring example in ``ibinn`` runs as written, offline, on the shipped models and demo
data, so that the examples a user copies stay true."""

import doctest
import importlib
import pkgutil
import re
from pathlib import Path

import pytest

import ibinn

# every module, those of subpackages (ibinn.explore.*) too
MODULES = ["ibinn", *sorted(m.name for m in pkgutil.walk_packages(ibinn.__path__, "ibinn."))]


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples_run(name):
    module = importlib.import_module(name)
    result = doctest.testmod(module, optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    assert result.failed == 0, f"{result.failed} of {result.attempted} examples in {name} failed"


def test_the_examples_are_there():
    """The modules a user starts from each show a runnable example (not skipped)."""
    for name in ("ibinn", "ibinn.model", "ibinn.data", "ibinn.evaluate", "ibinn.explore", "ibinn.zoo"):
        tests = doctest.DocTestFinder().find(importlib.import_module(name))
        runnable = [ex for t in tests for ex in t.examples
                    if not ex.options.get(doctest.SKIP)]
        assert runnable, name


def test_readme_python_runs():
    """The README's library example, as printed, on a fresh clone."""
    readme = (Path(__file__).parents[1] / "README.md").read_text()
    blocks = re.findall(r"```python\n(.*?)```", readme, flags=re.S)
    assert blocks
    for code in blocks:
        namespace: dict = {}
        exec(compile(code, "README.md", "exec"), namespace)
    assert namespace["proba"].shape == (8, 10) and namespace["x"].shape == (2, 1, 28, 28)

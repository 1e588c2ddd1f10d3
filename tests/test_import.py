"""`import ibinn` and the CLI's start stay quick: what costs a second to import (FrEIA, through
scipy.stats; scikit-learn) loads on first use, not with the package. The timings themselves are
benchmarks/import_time.py's; here, the property that keeps them low."""

import subprocess
import sys

import pytest

import ibinn

HEAVY = ("FrEIA", "sklearn", "scipy.stats")


@pytest.mark.parametrize("module", ["ibinn", "ibinn.cli"])
def test_import_leaves_the_heavy_modules_unloaded(module):
    code = f"import sys, {module}; print(' '.join(m for m in {HEAVY!r} if m in sys.modules))"
    loaded = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert loaded.stdout.split() == []


def test_lazy_names_are_all_there():
    assert set(ibinn.__all__) <= set(dir(ibinn))
    for name in ibinn.__all__:
        assert getattr(ibinn, name) is not None
    from ibinn import IBINN, ModelConfig  # noqa: F401  (the documented way still works)

    with pytest.raises(AttributeError, match="no attribute 'nope'"):
        ibinn.nope  # noqa: B018

"""Seeded model builds that leave the global random streams alone: :func:`private_global_rng`.

A model's initial weights and FrEIA's fixed random permutations are drawn while it is built; torch's
layers and FrEIA draw from the global generators and take no other. So that a config's ``seed``
alone fixes the weights, and a build in one thread (a dashboard worker) leaves another thread's
draws unchanged, a build runs under :func:`private_global_rng`, which hands those draws private
generators seeded alike.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator

import numpy as np
import torch
from torch.utils._python_dispatch import TorchDispatchMode

#: Held for a whole build: FrEIA's numpy is patched process-wide (:func:`_private_numpy_in_freia`).
_GLOBAL_RNG_LOCK = threading.RLock()


class _PrivateGenerator(TorchDispatchMode):
    """Give every random draw of the ops this thread runs ``generator`` in place of torch's global
    one. Dispatch modes are thread-local, so another thread's draws never see it."""

    def __init__(self, generator: torch.Generator):
        super().__init__()
        self.generator = generator

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        kwargs = dict(kwargs or {})
        names = [a.name for a in func._schema.arguments]
        if "generator" in names:
            i = names.index("generator")
            if i < len(args) and args[i] is None:
                args = (*args[:i], self.generator, *args[i + 1:])
            elif i >= len(args) and kwargs.get("generator") is None:
                kwargs["generator"] = self.generator
        elif torch.Tag.nondeterministic_seeded in func.tags:  # e.g. randn.default: its overload
            name = "generator" if func._overloadname == "default" else f"{func._overloadname}_generator"
            if not hasattr(func.overloadpacket, name):
                raise RuntimeError(f"{func} draws from torch's global generator and has no "
                                   f"overload taking one")
            func, kwargs["generator"] = getattr(func.overloadpacket, name), self.generator
        return func(*args, **kwargs)


class _NumpyWith:
    """numpy as a FrEIA module sees it during a build: ``np.random`` is a private RandomState."""

    def __init__(self, random: np.random.RandomState):
        self.random = random

    def __getattr__(self, name: str):
        return getattr(np, name)


@contextlib.contextmanager
def _private_numpy_in_freia(seed: int) -> Iterator[None]:
    """FrEIA 0.2 draws its permutations from numpy's global RNG (``special_ortho_group.rvs``,
    ``np.random.permutation``) and takes no generator: for the block, its two modules that draw
    see a RandomState seeded with ``seed`` instead, which draws what the global RNG seeded alike
    would. Module attributes are process-wide: hold ``_GLOBAL_RNG_LOCK``."""
    import FrEIA.modules.all_in_one_block as all_in_one
    import FrEIA.modules.fixed_transforms as fixed
    from scipy import stats

    private = np.random.RandomState(seed)
    patches = [(all_in_one, "np", _NumpyWith(private)), (fixed, "np", _NumpyWith(private)),
               (all_in_one, "special_ortho_group", type(stats.special_ortho_group)(seed=private))]
    saved = [(module, name, getattr(module, name)) for module, name, _ in patches]
    try:
        for module, name, value in patches:
            setattr(module, name, value)
        yield
    finally:
        for module, name, value in saved:
            setattr(module, name, value)


@contextlib.contextmanager
def private_global_rng(seed: int) -> Iterator[None]:
    """Run a block that initialises a model, its random numbers drawn from ``seed`` alone, without
    touching the global random streams that other threads draw from.

    Torch's layers initialise from torch's global generator and take no other: this thread's
    draws go to a private ``torch.Generator`` seeded with ``seed`` instead (:class:`_PrivateGenerator`).
    FrEIA's permutations come from a private numpy RandomState (:func:`_private_numpy_in_freia`).
    Both draw the numbers that the global ones seeded with ``seed`` would, so a seed makes the
    weights it always made.
    """
    with _GLOBAL_RNG_LOCK, _private_numpy_in_freia(seed), \
            _PrivateGenerator(torch.Generator().manual_seed(seed)):
        yield

"""Attacks on the limits that guard a shared server: crafted model files, generated configs and
generated API arguments, and the global random streams.

Model files and API arguments come from strangers. Every crafted file must be refused with a
:class:`ibinn.CheckpointError` naming what is wrong, quickly and without allocating what the file
asks for; every bad argument must be refused with a ``ValueError`` naming the argument; and
whatever is accepted must give results of the right shape and finite values.
"""

from __future__ import annotations

import json
import math
import os
import random
import re
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp
from safetensors import safe_open
from safetensors.torch import load_file, save_file

import ibinn
from ibinn import explore, limits
from ibinn.baselines import ResNetClassifier
from ibinn.checkpoint import FORMAT

from .conftest import randomize, torch_threads

SHAPE = (1, 28, 28)
DIM = math.prod(SHAPE)
LIMITS = limits.Limits()  # the defaults: the tests assume no $IBINN_LIMITS

QUICK = settings(max_examples=50, deadline=None, suppress_health_check=[HealthCheck.too_slow])
SLOW = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def mostly(valid: st.SearchStrategy, invalid: st.SearchStrategy) -> st.SearchStrategy:
    """``valid`` three times in four: with several arguments, whole calls are often valid too.
    (Which is which is still decided by the tests' own oracles, not by the branch drawn.)"""
    return st.sampled_from([True, True, True, False]).flatmap(lambda ok: valid if ok else invalid)


@pytest.fixture(scope="module", autouse=True)
def default_limits():
    """The limits in force are the defaults (``$IBINN_LIMITS`` would change what is refused)."""
    with pytest.MonkeyPatch.context() as mp:
        mp.delenv(limits.ENV, raising=False)
        assert limits.current() == LIMITS
        yield


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """Thousands of calls on a tiny model: on a busy 2-core machine, two spinning OpenMP threads
    per call made them 20 times slower than one."""
    with torch_threads(1):
        yield


@pytest.fixture(scope="module")
def model() -> ibinn.IBINN:
    """A tiny grey IB-INN with weights far enough from the identity to make inversion non-trivial."""
    config = ibinn.ModelConfig.from_preset("tiny", SHAPE, n_classes=10)
    return randomize(ibinn.IBINN(config), scale=0.05).eval()


@pytest.fixture(scope="module")
def folder(tmp_path_factory) -> Path:
    # a neutral name: tmp_path would hold the test's name, and so the field names the test
    # expects in the message
    return tmp_path_factory.mktemp("x")


@pytest.fixture(scope="module")
def model_file(model, folder) -> Path:
    return model.save(folder / "model.safetensors")


def read(path: Path) -> tuple[dict, dict[str, torch.Tensor]]:
    with safe_open(str(path), framework="pt") as f:
        meta = f.metadata()
    assert meta["format"] == FORMAT
    return json.loads(meta["config"]), load_file(str(path))


def write(path: Path, config: dict | str, tensors: dict[str, torch.Tensor]) -> Path:
    """A model file as a stranger could make it: any config text, any tensors."""
    text = config if isinstance(config, str) else json.dumps(config)
    save_file({k: v.contiguous() for k, v in tensors.items()}, str(path),
              metadata={"format": FORMAT, "config": text})
    return path


def mentions(message: str, name: str) -> bool:
    """``name`` occurs in ``message`` as a word of its own: "mode" is not in "invalid model config",
    "classes" not in "n_classes"."""
    return re.search(rf"(?<!\w){re.escape(name)}(?!\w)", message) is not None


def refusal(path: Path) -> str:
    """The message of the CheckpointError that loading ``path`` raises, without the path."""
    with pytest.raises(ibinn.CheckpointError) as err:
        ibinn.load(path, device="cpu")
    return str(err.value).replace(str(path), "<file>")


# =========================================================================== crafted model files

def _with(**changes):
    return lambda config: json.dumps({**config, **changes})


def _long_class_name(config: dict) -> str:
    return json.dumps({**config, "classes": ["x" * 10_000] + config["classes"][1:]})


#: (what, config text made from the valid config, a word the refusal must contain)
CRAFTED_CONFIGS = [
    ("1e9 classes", _with(n_classes=10**9, classes=[]), "n_classes"),
    ("1e6 blocks", _with(levels=[10**6, 6]), "levels"),
    ("4e5 fc width", _with(fc_width=400_000), "fc_width"),
    ("negative widths", _with(widths=[-16, -32]), "widths"),
    ("no classes", _with(n_classes=0, classes=[]), "n_classes"),
    ("a list", lambda config: "[1]", "JSON object"),
    ("gamma text", _with(gamma="abc"), "gamma"),
    ("huge image", _with(image_shape=[1, 10**6, 10**6]), "image_shape"),
    ("long class name", _long_class_name, "classes"),
    ("negative seed", _with(seed=-1), "seed"),
    ("NaN clamp", _with(clamp=math.nan), "clamp"),
    ("unknown field", _with(colour_space="lab"), "colour_space"),
    # beyond the reported cases
    ("null", lambda config: "null", "JSON object"),
    ("a string", lambda config: '"model"', "JSON object"),
    ("deep nesting", lambda config: "[" * 100_000 + "]" * 100_000, "not valid JSON"),
    ("2 MB of config", _with(dataset="x" * 2_000_000), "metadata"),  # refused before it is parsed
    ("integer of 5000 digits", lambda config: json.dumps(config).replace('"n_classes": 10', '"n_classes": 1'
                                                                         + "0" * 5000), "not valid JSON"),
    ("model_type list", _with(model_type=["ibinn"]), "unknown type"),
    ("model_type unknown", _with(model_type="gan"), "unknown type"),
    ("model_type of a baseline", _with(model_type="resnet"), "inn.module_list"),
    ("mean a number", _with(mean=3), "mean"),
    ("std null", _with(std=None), "std"),
    ("std zero", _with(std=[0.0]), "std"),
    ("clamp 1e400", lambda config: json.dumps(config).replace('"clamp": 1.5', '"clamp": 1' + "0" * 400),
     "clamp"),
    ("infinite mu_init", _with(mu_init=math.inf), "mu_init"),
    ("odd image side", _with(image_shape=[1, 27, 27]), "image_shape"),
    ("image too small for its levels", _with(image_shape=[1, 2, 2], n_classes=2, classes=[]),
     "image_shape"),
    ("dct_pooling text", _with(dct_pooling="yes"), "dct_pooling"),
    ("fc_blocks true", _with(fc_blocks=True), "fc_blocks"),
    ("unknown mode", _with(mode="gan"), "mode"),
    ("unknown downsampling", _with(downsampling="bicubic"), "downsampling"),
    ("classes not names", _with(classes=list(range(10))), "classes"),
    # issue 25: a field that is empty, missing or out of range is refused, never a silent default
    ("mean empty", _with(mean=[]), "mean"),
    ("std empty", _with(std=[]), "std"),
    ("classes empty", _with(classes=[]), "classes"),
    ("std tiny", _with(std=[1e-300]), "std"),
    ("mean huge", _with(mean=[1e300]), "mean"),
    ("clamp missing", lambda config: json.dumps({k: v for k, v in config.items() if k != "clamp"}), "clamp"),
    ("mean missing", lambda config: json.dumps({k: v for k, v in config.items() if k != "mean"}), "mean"),
]


@pytest.mark.parametrize("change,field", [c[1:] for c in CRAFTED_CONFIGS],
                         ids=[c[0] for c in CRAFTED_CONFIGS])
def test_crafted_config_is_refused_naming_the_field(model_file, folder, change, field):
    config, tensors = read(model_file)
    message = refusal(write(folder / "crafted.safetensors", change(config), tensors))
    assert mentions(message, field), message


def test_long_lists_in_a_config_are_refused_without_a_pass_over_them():
    """A config given as a dict (an API call, not a file: files have a size cap) with lists of
    millions of entries is refused by their length, before any copy or check of every entry."""
    for field, value in (("mean", [0.5] * 1_000_000), ("classes", ["x"] * 1_000_000),
                         ("levels", [1] * 1_000_000)):
        start = time.perf_counter()
        with pytest.raises(ibinn.CheckpointError, match=field):
            ibinn.ModelConfig.from_json({**BASE_CONFIG, field: value})
        assert time.perf_counter() - start < 0.5, field


def test_json_nan_is_written_and_read_back_so_the_config_check_must_refuse_it(model_file, folder):
    config, tensors = read(model_file)
    text = json.dumps({**config, "clamp": math.nan, "act_norm": -math.inf})
    assert '"clamp": NaN' in text and json.loads(text)["clamp"] != json.loads(text)["clamp"]
    with pytest.raises(ValueError, match="Out of range float"):
        json.dumps({"clamp": math.nan}, allow_nan=False)  # strict JSON has no NaN: Python's has
    assert "clamp" in refusal(write(folder / "crafted.safetensors", text, tensors))


def test_rewritten_file_still_loads(model, model_file, folder):
    """The crafting helpers change only what a test asks: an unchanged rewrite loads, same model."""
    config, tensors = read(model_file)
    loaded = ibinn.load(write(folder / "same.safetensors", config, tensors), device="cpu")
    x = torch.rand(2, *SHAPE)
    assert torch.allclose(loaded.encode(x), model.encode(x), atol=1e-6)


def _first(tensors: dict, suffix: str) -> str:
    return next(k for k in sorted(tensors) if k.endswith(suffix))


def test_nan_weight_is_refused(model_file, folder):
    config, tensors = read(model_file)
    key = _first(tensors, "subnet.0.weight")
    tensors[key] = tensors[key].clone()
    tensors[key].view(-1)[3] = math.nan
    message = refusal(write(folder / "crafted.safetensors", config, tensors))
    assert key in message and "NaN" in message


def test_infinite_class_mean_is_refused(model_file, folder):
    config, tensors = read(model_file)
    tensors["mu"] = tensors["mu"].clone()
    tensors["mu"][2, 5] = math.inf
    assert re.search(r"\bmu\b", refusal(write(folder / "crafted.safetensors", config, tensors)))


@pytest.mark.parametrize("scale", [1e35, 3e38])
def test_finite_weights_whose_outputs_overflow_are_refused(model_file, folder, scale):
    """Found by the issue-25 re-attack: one damaged exponent byte made the last block's global
    scale 8e35; each weight finite, the file loaded and every posterior was NaN."""
    config, tensors = read(model_file)
    key = sorted(k for k in tensors if k.endswith("global_scale"))[-1]
    tensors[key] = torch.full_like(tensors[key], scale)
    message = refusal(write(folder / "crafted.safetensors", config, tensors))
    assert "not finite" in message and "log_posterior" in message, message


@pytest.mark.parametrize("damage", ["zeros", "repeat", "out of range", "negative", "float", "short"])
def test_permutation_index_that_is_not_a_permutation_is_refused(model, model_file, folder, damage):
    """The reported bug: an all-zero index vector loaded silently, reconstruction error 96."""
    config, tensors = read(model_file)
    key = _first(tensors, "w_perm_index")
    index = tensors[key].clone()
    n = len(index)
    tensors[key] = {"zeros": torch.zeros_like(index),
                    "repeat": torch.cat([index[:-1], index[:1]]),
                    "out of range": torch.where(index == 0, n, index),
                    "negative": torch.where(index == 0, -n, index),
                    "float": index.double(),
                    "short": index[:-1]}[damage]
    message = refusal(write(folder / "crafted.safetensors", config, tensors))
    assert key in message and "permutation" in message


def test_permutation_index_that_is_another_permutation_loads_and_inverts(model_file, folder):
    """Not every change is damage: another valid permutation is another valid model."""
    config, tensors = read(model_file)
    key = _first(tensors, "w_perm_index")
    tensors[key] = tensors[key].flip(0)
    loaded = ibinn.load(write(folder / "other.safetensors", config, tensors), device="cpu")
    x = torch.rand(2, *SHAPE)
    assert (loaded.decode(loaded.encode(x)) - x).abs().max() < 1e-4


def test_soft_permutation_that_is_not_orthogonal_is_refused(model_file, folder):
    config, tensors = read(model_file)
    key = _first(tensors, "w_perm")
    gen = torch.Generator().manual_seed(0)
    tensors[key] = torch.randn(tensors[key].shape, generator=gen)
    message = refusal(write(folder / "crafted.safetensors", config, tensors))
    assert key in message and "orthogonal" in message


def test_weights_of_the_wrong_shape_for_a_valid_config_are_refused(model_file, folder):
    config, tensors = read(model_file)
    # a valid config of another width: every conv subnet of the second level has other shapes
    message = refusal(write(folder / "crafted.safetensors", {**config, "widths": [16, 24]}, tensors))
    assert "shape" in message and "subnet" in message
    key = _first(tensors, "global_scale")
    config, tensors = read(model_file)
    tensors[key] = tensors[key][:, :2]
    message = refusal(write(folder / "crafted.safetensors", config, tensors))
    assert key in message and "shape" in message


def test_missing_and_extra_tensors_are_refused(model_file, folder):
    config, tensors = read(model_file)
    key = _first(tensors, "subnet.2.bias")
    message = refusal(write(folder / "crafted.safetensors", config,
                            {k: v for k, v in tensors.items() if k != key}))
    assert key in message and "missing" in message
    extra = {**tensors, "backdoor": tensors[key].clone()}
    message = refusal(write(folder / "crafted.safetensors", config, extra))
    assert "backdoor" in message


def test_weights_that_break_invertibility_are_refused(model_file, folder):
    """Finite weights of the right shape that make a coupling non-invertible (scale 0)."""
    config, tensors = read(model_file)
    key = _first(tensors, "global_scale")
    tensors[key] = torch.full_like(tensors[key], -1e4)
    assert "invert" in refusal(write(folder / "crafted.safetensors", config, tensors))


@pytest.fixture(scope="module")
def dct_file(folder) -> Path:
    config = ibinn.ModelConfig(SHAPE, 10, levels=[1, 1], widths=[8, 8], fc_width=16, dct_pooling=True)
    return randomize(ibinn.IBINN(config), scale=0.05).save(folder / "dct.safetensors")


@pytest.mark.parametrize("buffer,word", [("order", "index buffer"), ("inverse_order", "index buffer"),
                                         ("dct_h", "orthogonal"), ("dct_w", "orthogonal")])
def test_tampered_dct_buffers_are_refused(dct_file, folder, buffer, word):
    config, tensors = read(dct_file)
    assert ibinn.load(dct_file, device="cpu").config.dct_pooling
    key = _first(tensors, "." + buffer)
    value = tensors[key]
    tensors[key] = value.roll(1, 0) if not value.is_floating_point() else value * 1.5
    message = refusal(write(folder / "crafted.safetensors", config, tensors))
    assert key in message and word in message


def test_baseline_file_with_crafted_config_is_refused(folder):
    config = ibinn.ModelConfig.from_preset("tiny", SHAPE, n_classes=10)
    path = ResNetClassifier(config).save(folder / "resnet.safetensors")
    assert isinstance(ibinn.load(path, device="cpu"), ResNetClassifier)
    meta, tensors = read(path)
    assert "n_classes" in refusal(write(folder / "crafted.safetensors", {**meta, "n_classes": 10**9,
                                                                          "classes": []}, tensors))


RESOURCE_CHILD = r"""
import json, resource, sys, time
import ibinn, torch

def vm_kib():
    with open("/proc/self/status") as f:
        return next(int(line.split()[1]) for line in f if line.startswith("VmSize:"))

# so that a regression fails with MemoryError instead of taking the machine down
resource.setrlimit(resource.RLIMIT_AS, ((vm_kib() + 4 * 2**20) * 1024, resource.RLIM_INFINITY))
base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
results = []
for arg in sys.argv[1:]:
    start = time.perf_counter()
    try:
        if arg.startswith("build:"):
            model = ibinn.IBINN(ibinn.ModelConfig(**json.loads(arg[6:])))
            outcome = f"built {model.num_parameters()}"
            del model
        else:
            ibinn.load(arg, device="cpu")
            outcome = "loaded"
    except ibinn.CheckpointError as err:
        outcome = "refused: " + str(err)[:200]
    except BaseException as err:
        outcome = f"{type(err).__name__}: {err}"[:200]
    results.append({"arg": arg[:80], "seconds": time.perf_counter() - start, "outcome": outcome,
                    "rss_growth_mib": (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - base) / 1024})
print(json.dumps(results))
"""


def test_worst_files_are_refused_in_bounded_time_and_memory(model_file, folder):
    """In a fresh process: peak RSS growth (after ``import ibinn, torch``) < 1 GiB, < 10 s each."""
    config, tensors = read(model_file)
    worst = {"classes": {**config, "n_classes": 10**9, "classes": []},
             "blocks": {**config, "levels": [10**6, 6]},
             "fc": {**config, "fc_width": 400_000},
             "image": {**config, "image_shape": [1, 10**6, 10**6]},
             "all": {**config, "n_classes": 10**9, "classes": [], "levels": [10**6, 6],
                     "fc_width": 400_000, "image_shape": [1, 10**6, 10**6]},
             # 20 MB of config: parsing and checking it must not cost more than its size
             "long": {**config, "mean": [0.5] * 4_000_000}}
    paths = [str(write(folder / f"worst-{name}.safetensors", cfg, tensors)) for name, cfg in worst.items()]
    # accepted, at the edge of the limits: the largest image and latent, nothing else
    edge = {"image_shape": [3, 512, 512], "n_classes": 2, "levels": [0], "widths": [1], "fc_blocks": 0}
    run = subprocess.run([sys.executable, "-c", RESOURCE_CHILD, *paths, "build:" + json.dumps(edge)],
                         capture_output=True, text=True, timeout=300,
                         env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert run.returncode == 0, run.stderr[-3000:]
    results = json.loads(run.stdout.splitlines()[-1])
    for result in results[:-1]:
        assert result["outcome"].startswith("refused"), result
        assert result["seconds"] < 10, result
    assert results[-2]["seconds"] < 2, results[-2]  # the long config: refused by its length, unparsed
    assert results[-1]["outcome"].startswith("built"), results[-1]
    assert results[-1]["seconds"] < 3, results[-1]  # μ's initialisation once took 8 s here
    assert results[-1]["rss_growth_mib"] < 1024, results


# =========================================================================== generated configs

BASE_CONFIG = ibinn.ModelConfig.from_preset("small", (3, 32, 32), 10).to_json()
FIELDS = sorted(BASE_CONFIG)

JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=True) | st.text(max_size=20),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=5), children,
                                                                     max_size=3),
    max_leaves=8)
BIG_INTS = st.integers(min_value=2**31, max_value=2**1100) | st.integers(min_value=-(2**1100), max_value=-1)
NUMBER = st.floats(0, 200) | st.integers(0, 200)
SIDE = st.sampled_from([1, 2, 4, 8, 16, 24, 32, 64, 512, 4096]) | st.integers(0, 70)
#: per field, values near the valid ones, so that the accepted side is tested too
PLAUSIBLE = {
    "image_shape": st.tuples(st.sampled_from([1, 3, 2, 4]), SIDE, SIDE).map(list),
    "n_classes": st.integers(0, 2000), "classes": st.lists(st.text(max_size=8), max_size=12),
    "mean": st.lists(st.floats(-1, 1.1), max_size=4),
    "std": st.lists(st.floats(0, 1.1) | st.sampled_from([1e-300, 1e-5, 1e-4]), max_size=4),
    "levels": st.lists(st.integers(0, 120), min_size=1, max_size=7),
    "widths": st.lists(st.integers(1, 3000), min_size=1, max_size=7),
    "fc_blocks": st.integers(0, 20), "fc_width": st.integers(0, 20_000),
    "dct_pooling": st.booleans(), "learn_class_weights": st.booleans(),
    "downsampling": st.sampled_from(["irevnet", "haar", "bicubic"]),
    "clamp": NUMBER, "act_norm": NUMBER, "mu_init": NUMBER, "fixed_mu_radius": st.none() | NUMBER,
    "gamma": NUMBER | st.sampled_from(["inf", "Infinity", "-inf"]), "seed": st.integers(-1, 2**33),
    "mode": st.sampled_from(["ib", "class-nll", "gan"]), "preset": st.text(), "dataset": st.text(),
    "subnet": st.sampled_from(["plain", "official", "resnet"]),
    "dropout": st.lists(st.floats(0, 1) | st.integers(0, 1), max_size=4),
    "fc_dropout": NUMBER, "fc_clamp": st.none() | NUMBER,
    "fc_coupling": st.sampled_from(["allinone", "glow", "maf"]),
    "global_affine": st.sampled_from(["softplus", "exp", "sigmoid"]),
}
assert set(PLAUSIBLE) == set(FIELDS)

#: a refusal caused by one field may name the field it conflicts with instead
RELATED = {"image_shape": {"mean", "std", "n_classes", "levels", "classes"},
           "n_classes": {"classes", "image_shape"}, "levels": {"widths", "image_shape"},
           "widths": {"levels"}, "classes": {"n_classes"}, "subnet": {"dropout", "fc_dropout"}}


@st.composite
def mutated_configs(draw) -> tuple[dict, set[str]]:
    """The small preset's config with some fields changed to arbitrary JSON and some removed."""
    n = draw(mostly(st.just(1), st.integers(2, 3)))
    keys = draw(st.lists(mostly(st.sampled_from(FIELDS), st.text(max_size=5)), min_size=n, max_size=n,
                         unique=True))
    changes = {key: draw(mostly(PLAUSIBLE[key], JSON | BIG_INTS) if key in PLAUSIBLE else JSON)
               for key in keys}
    removed = draw(mostly(st.just(set()), st.sets(st.sampled_from(FIELDS), max_size=2))) - set(changes)
    config = {k: v for k, v in {**BASE_CONFIG, **changes}.items() if k not in removed}
    return config, set(changes) | removed


def check_config(data: tuple[dict, set[str]]) -> None:
    config_json, changed = data
    try:
        config = ibinn.ModelConfig.from_json(config_json)
    except ibinn.CheckpointError as err:
        message = str(err)
        unknown = changed - set(FIELDS)
        names = unknown or set().union(*({name} | RELATED.get(name, set()) for name in changed))
        assert any(mentions(message, name) or repr(name) in message for name in names), (changed, message)
        event("refused")
        return
    # accepted: every field as stored (none missing but those added later, none defaulted),
    # within every limit, savable as strict JSON, and read back as the same config
    saved = config.to_json()
    assert set(FIELDS) - set(config_json) <= set(ibinn.ModelConfig.ADDED_LATER), changed
    for key, value in config_json.items():
        kept = json.loads(json.dumps(saved[key]))
        if key == "gamma":
            assert float(kept) == float(value), (value, kept)
        else:
            assert kept == json.loads(json.dumps(value)), (key, value, kept)
    fp = limits.check_model_config(saved)
    assert fp.model_mib <= LIMITS.max_model_mib
    assert fp.activation_mib_per_image <= LIMITS.max_activation_mib_per_image
    assert fp.train_gflops_per_image <= LIMITS.max_train_gflops_per_image
    assert fp.permutation_work <= LIMITS.max_permutation_work
    assert ibinn.ModelConfig.from_json(json.loads(json.dumps(saved, allow_nan=False))) == config
    event("accepted")
    if fp.parameters < 200_000:
        ibinn.IBINN(config)
        event("accepted and built")


@QUICK
@given(mutated_configs())
def test_mutated_config_is_accepted_within_limits_or_refused_naming_the_field(data):
    check_config(data)


@pytest.mark.slow
@settings(SLOW, max_examples=500)
@given(mutated_configs())
def test_mutated_config_is_accepted_within_limits_or_refused_naming_the_field_many(data):
    check_config(data)


@st.composite
def small_architectures(draw) -> dict:
    """Small configs of every kind the model builds, some of them not buildable."""
    n_levels = draw(st.integers(1, 4))
    side = mostly(st.sampled_from([2, 4, 8, 12, 16, 24]), st.integers(2, 24))
    return {"image_shape": [draw(st.sampled_from([1, 3])), draw(side), draw(side)],
            "n_classes": draw(st.integers(2, 12)),
            "levels": draw(st.lists(st.integers(0, 2), min_size=n_levels, max_size=n_levels)),
            "widths": draw(st.lists(st.integers(1, 12), min_size=n_levels, max_size=n_levels)),
            "fc_blocks": draw(st.integers(0, 2)), "fc_width": draw(st.integers(1, 24)),
            "dct_pooling": draw(st.booleans()), "downsampling": draw(st.sampled_from(["irevnet", "haar"])),
            "learn_class_weights": draw(st.booleans()),
            "fixed_mu_radius": draw(st.none() | st.floats(0.5, 10))}


def check_architecture(arch: dict) -> None:
    """Accepted configs build, with exactly the parameters :func:`limits.footprint` counts."""
    try:
        config = ibinn.ModelConfig(**arch)  # built in code: the fields it omits take their defaults
    except ValueError as err:
        # only a size that cannot go through the levels' halvings, or more classes than pixels
        assert re.search(r"image_shape|n_classes", str(err)), str(err)
        event("refused")
        return
    model = ibinn.IBINN(config)  # a config that is accepted must build
    fp = limits.footprint(config.to_json())
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    fixed = (0 if config.learn_class_weights else config.n_classes) + (
        0 if config.fixed_mu_radius is None else config.n_classes * config.dim)
    assert trainable == fp.parameters - fixed
    floats = sum(p.numel() for p in model.parameters()) + sum(b.numel() for b in model.buffers())
    # the footprint leaves out the 2 x 2 downsampling kernels, 16 floats per input channel
    assert fp.parameters + fp.buffer_floats <= floats <= fp.parameters + fp.buffer_floats + 32 * config.dim
    x = torch.rand(2, *config.image_shape)
    assert (model.decode(model.encode(x)) - x).abs().max() < 1e-4
    event("accepted")


@QUICK
@given(small_architectures())
def test_generated_architecture_builds_with_the_footprint_it_was_checked_for(arch):
    check_architecture(arch)


@pytest.mark.slow
@SLOW
@given(small_architectures())
def test_generated_architecture_builds_with_the_footprint_it_was_checked_for_many(arch):
    check_architecture(arch)


@pytest.mark.parametrize("preset", list(ibinn.PRESETS))
@pytest.mark.parametrize("shape", [(1, 28, 28), (3, 32, 32)])
def test_footprint_counts_the_parameters_of_every_preset(preset, shape):
    config = ibinn.ModelConfig.from_preset(preset, shape, 10)
    model = ibinn.IBINN(config)
    fp = limits.footprint(config.to_json())
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    assert abs(fp.parameters - trainable) <= 1e-3 * trainable
    floats = sum(p.numel() for p in model.parameters()) + sum(b.numel() for b in model.buffers())
    assert abs(4 * floats / 2**20 - fp.model_mib) <= 1e-3 * fp.model_mib
    assert fp.model_mib <= LIMITS.max_model_mib


# =========================================================================== API arguments

NOT_NUMBERS = (st.none() | st.text(max_size=3) | st.just([1]) | st.just({"n": 1}) | st.just(b"1")
               | st.just(1j) | st.just(np.array([1, 2])))
FLOATS = st.floats(allow_nan=True, allow_infinity=True)
HUGE = st.integers(min_value=2**64, max_value=2**1100) | st.integers(min_value=-(2**1100), max_value=-(2**64))


def as_int(value) -> int | None:
    """The integer a valid integer argument stands for (ints and numpy ints, not bools)."""
    return int(value) if isinstance(value, int | np.integer) and not isinstance(value, bool) else None


def as_real(value) -> float | None:
    """The finite number a valid real argument stands for (not bools, strings, arrays)."""
    if isinstance(value, bool) or not isinstance(value, int | float | np.integer | np.floating):
        return None
    try:
        value = float(value)
    except OverflowError:
        return None
    return value if math.isfinite(value) else None


def in_range(value, low, high) -> bool:
    return value is not None and low <= value <= high


def names(message: str, name: str) -> bool:
    """``message`` is about the argument ``name`` (the checkers start with it)."""
    return message.startswith(name + " ") or message.startswith(name + "[")


def refused(call, *argument_names: str) -> str:
    """``call()`` raises a ValueError naming one of ``argument_names``; its message."""
    with pytest.raises(ValueError) as err:
        call()
    message = str(err.value)
    assert any(names(message, name) for name in argument_names), (argument_names, message)
    return message


def assert_images(x: torch.Tensor, shape: tuple[int, ...]) -> None:
    assert tuple(x.shape) == shape
    assert bool(torch.isfinite(x).all()) and float(x.min()) >= 0 and float(x.max()) <= 1


CLASS_INDEX = mostly(st.integers(0, 9) | st.integers(0, 9).map(np.int64),
                     st.integers(-3, 12) | st.integers(0, 9).map(float) | HUGE | FLOATS | st.booleans()
                     | NOT_NUMBERS)
N = mostly(st.integers(1, 4) | st.integers(1, 4).map(np.int32),
           st.integers(-2, 0) | st.integers(LIMITS.max_samples + 1, 2**70) | st.integers(1, 4).map(float)
           | HUGE | FLOATS | st.booleans() | NOT_NUMBERS)
TEMPERATURE = mostly(st.floats(0, 100) | st.integers(0, 100) | st.floats(0, 2).map(np.float32),
                     st.integers(-1000, 1000) | st.integers(10**300, 10**400) | FLOATS | st.booleans()
                     | NOT_NUMBERS)
SEED = mostly(st.none() | st.integers(0, 2**63 - 1) | st.integers(0, 2**32 - 1).map(np.uint32),
              st.integers(-3, 2**64) | HUGE | FLOATS | st.booleans() | NOT_NUMBERS)


def check_sample(model, class_index, n, temperature, seed) -> None:
    checks = [("class_index", in_range(as_int(class_index), 0, 9)),
              ("n", in_range(as_int(n), 1, LIMITS.max_samples)),
              ("temperature", in_range(as_real(temperature), 0, 100)),
              ("seed", seed is None or in_range(as_int(seed), 0, 2**63 - 1))]
    bad = [name for name, ok in checks if not ok]
    if bad:
        refused(lambda: model.sample(class_index, n, temperature, seed), bad[0])
        event("refused")
        return
    state = torch.random.get_rng_state()
    x = model.sample(class_index, n, temperature, seed)
    assert_images(x, (int(n), *SHAPE))
    if seed is not None:  # a seed means a local generator: the global stream is not touched
        assert torch.equal(torch.random.get_rng_state(), state)
        assert torch.equal(model.sample(class_index, n, temperature, seed), x)
    event("accepted")


@QUICK
@given(class_index=CLASS_INDEX, n=N, temperature=TEMPERATURE, seed=SEED)
def test_sample_arguments(model, class_index, n, temperature, seed):
    check_sample(model, class_index, n, temperature, seed)


@pytest.mark.slow
@SLOW
@given(class_index=CLASS_INDEX, n=N, temperature=TEMPERATURE, seed=SEED)
def test_sample_arguments_many(model, class_index, n, temperature, seed):
    check_sample(model, class_index, n, temperature, seed)


def test_sample_edge_values(model):
    mean = model.decode(model.mu[4:5].detach()).clamp(0, 1)
    at_zero = model.sample(4, 3, temperature=0)  # temperature 0: the class mean itself, 3 times
    assert torch.allclose(at_zero, mean.expand(3, *SHAPE), atol=1e-6)
    assert_images(model.sample(np.int64(9), np.uint8(1), np.float32(100), seed=2**63 - 1), (1, *SHAPE))
    assert_images(model.sample(torch.tensor(2), 1), (1, *SHAPE))  # a 0-d integer tensor is an integer
    refused(lambda: model.sample(torch.tensor(2.0), 1), "class_index")
    refused(lambda: model.sample(2.5, 1), "class_index")
    refused(lambda: model.sample(True, 1), "class_index")
    refused(lambda: model.sample(0, LIMITS.max_samples + 1), "n")
    refused(lambda: model.sample(0, 1, -1e-9), "temperature")
    refused(lambda: model.sample(0, 1, 10**400), "temperature")
    refused(lambda: model.sample(0, 1, torch.tensor([1.0, 2.0])), "temperature")
    refused(lambda: model.sample(0, 10**5000), "n")  # Python cannot print it: the message must not try


STEPS = mostly(st.integers(2, 6) | st.integers(2, 6).map(np.int16),
               st.integers(-2, 1) | st.integers(LIMITS.max_steps + 1, 2**80) | st.integers(2, 6).map(float)
               | HUGE | FLOATS | st.booleans() | NOT_NUMBERS)


@pytest.fixture(scope="module")
def two_images() -> tuple[np.ndarray, np.ndarray]:
    gen = np.random.default_rng(0)
    return gen.integers(0, 256, (1, *SHAPE), dtype=np.uint8), gen.integers(0, 256, SHAPE[1:], dtype=np.uint8)


def check_interpolate(model, two_images, steps) -> None:
    x_a, x_b = two_images
    if not in_range(as_int(steps), 2, LIMITS.max_steps):
        refused(lambda: model.interpolate(x_a, x_b, steps), "steps")
        refused(lambda: explore.interpolation(model, x_a, x_b, steps), "steps")
        event("refused")
        return
    path = model.interpolate(x_a, x_b, steps)
    assert_images(path, (int(steps), *SHAPE))
    assert torch.allclose(path[0], torch.from_numpy(x_a[0]) / 255, atol=1e-3)
    assert torch.allclose(path[-1, 0], torch.from_numpy(x_b) / 255, atol=1e-3)
    result = explore.interpolation(model, x_a, x_b, steps)
    assert result.images.shape == (int(steps), *SHAPE) and np.isfinite(result.proba).all()
    assert np.allclose(result.proba.sum(1), 1, atol=1e-5)
    event("accepted")


@QUICK
@given(steps=STEPS)
def test_interpolate_steps(model, two_images, steps):
    check_interpolate(model, two_images, steps)


@pytest.mark.slow
@settings(SLOW, max_examples=100)
@given(steps=STEPS)
def test_interpolate_steps_many(model, two_images, steps):
    check_interpolate(model, two_images, steps)


def test_interpolate_refuses_what_is_not_one_image(model, two_images):
    x_a, _ = two_images
    for bad in (None, "no such file", {"x": 1}, np.zeros((2, *SHAPE), np.uint8), [[1, 2], [3]]):
        with pytest.raises(ValueError, match="image|file|x_a|x_b"):
            model.interpolate(x_a, bad)
        with pytest.raises(ValueError, match="image|file|x_a|x_b"):
            explore.interpolation(model, bad, x_a)


ELEMENT32 = st.floats(allow_nan=True, allow_infinity=True, width=32)
ELEMENT = ELEMENT32 | st.floats(-1e300, 1e300)  # for float64: beyond float32, where latents are kept
BATCH_SIZE = mostly(st.integers(1, 8) | st.integers(1, 8).map(np.int64) | st.just(LIMITS.max_batch_size),
                    st.integers(-3, 0) | st.integers(LIMITS.max_batch_size + 1, 2**70) | st.floats()
                    | st.booleans() | NOT_NUMBERS)


@st.composite
def latents(draw):
    kind = draw(st.sampled_from(["good", "good", "wild", "shape", "other"]))
    dtype = draw(st.sampled_from([np.float32, np.float64]))
    if kind == "good":
        z = draw(hnp.arrays(dtype, (draw(st.integers(1, 3)), DIM), elements=st.floats(-30, 30, width=32),
                            fill=st.floats(-3, 3, width=32)))
    elif kind == "wild":
        z = draw(hnp.arrays(dtype, (draw(st.integers(1, 2)), DIM),
                            elements=ELEMENT if dtype == np.float64 else ELEMENT32,
                            fill=st.floats(-3, 3, width=32)))
    elif kind == "shape":
        shape = draw(st.sampled_from([(0, DIM), (2, DIM - 1), (1, DIM + 1), (DIM,), (1, 1, DIM), ()]))
        z = draw(hnp.arrays(dtype, shape, elements=st.floats(-3, 3, width=32)))
    else:
        return draw(st.none() | st.text(max_size=3) | st.just({"z": 1}) | st.just([[0.0] * DIM, [0.0]])
                    | st.just([[0.5] * DIM]) | st.just(np.array([["a"] * DIM])))
    return draw(st.sampled_from([z, torch.as_tensor(z)]))


def as_float32(value) -> np.ndarray | None:
    if value is None or isinstance(value, str | bytes | dict):
        return None
    try:
        with np.errstate(over="ignore"):
            return np.asarray(value, dtype=np.float32)
    except (TypeError, ValueError):
        return None


def check_decode(model, z, batch_size) -> None:
    array = as_float32(z)
    z_ok = (array is not None and array.ndim == 2 and array.shape[0] >= 1 and array.shape[1] == DIM
            and bool(np.isfinite(array).all()))
    bad = [name for name, ok in (("batch_size", in_range(as_int(batch_size), 1, LIMITS.max_batch_size)),
                                 ("z", z_ok)) if not ok]
    if bad:
        refused(lambda: model.decode(z, batch_size), bad[0])
        event("refused")
        return
    if np.abs(array).max() <= 1e3:
        x = model.decode(z, batch_size)
    else:  # latents far from any class: decoded to finite values, or refused
        try:
            x = model.decode(z, batch_size)
        except ValueError as err:
            assert names(str(err), "z"), str(err)
            event("refused: far from the means")
            return
    assert x.shape == (len(array), *SHAPE) and bool(torch.isfinite(x).all())
    event("accepted")


@QUICK
@given(z=latents(), batch_size=BATCH_SIZE)
def test_decode_arguments(model, z, batch_size):
    check_decode(model, z, batch_size)


@pytest.mark.slow
@SLOW
@given(z=latents(), batch_size=BATCH_SIZE)
def test_decode_arguments_many(model, z, batch_size):
    check_decode(model, z, batch_size)


def test_decode_of_extreme_latents_is_finite_or_refused(model):
    for value in (1e4, 1e20, 3e38, -3e38):
        try:
            x = model.decode(torch.full((1, DIM), value))
        except ValueError as err:
            assert names(str(err), "z"), str(err)
        else:
            assert bool(torch.isfinite(x).all()), value


INFERENCE = ["predict_proba", "predict", "infer", "encode", "log_likelihood", "bits_per_dim"]
PIXEL = st.floats(0, 1) | st.sampled_from([-0.5, 1.5, 255.0, math.nan, math.inf, -math.inf])


@st.composite
def images(draw):
    kind = draw(st.sampled_from(["uint8", "uint8", "float", "float", "dtype", "shape", "other"]))
    n = draw(st.integers(1, 3))
    if kind == "uint8":
        shape = draw(st.sampled_from([(n, 1, 28, 28), (n, 28, 28, 1), (n, 28, 28)]))
        x = draw(hnp.arrays(np.uint8, shape, elements=st.integers(0, 255), fill=st.integers(0, 255)))
    elif kind == "float":
        dtype = draw(st.sampled_from([np.float16, np.float32, np.float64]))
        x = draw(hnp.arrays(dtype, (n, *SHAPE), elements=PIXEL, fill=st.floats(0, 1, width=16)))
    elif kind == "dtype":
        dtype = draw(st.sampled_from([np.bool_, np.int64, np.int8, np.complex64, np.uint16]))
        x = draw(hnp.arrays(dtype, (n, *SHAPE)))
    elif kind == "shape":
        dtype = draw(st.sampled_from([np.uint8, np.float32]))
        shape = draw(st.sampled_from([(0, *SHAPE), (n, 3, 28, 28), (n, 1, 28, 27), (n, 28, 28, 3),
                                      SHAPE, (28, 28), (n, 784), (), (n, 1, 1, 28, 28)]))
        x = np.zeros(shape, dtype)
    else:
        return draw(st.none() | st.text(max_size=5) | st.binary(max_size=20) | st.just({"images": 1})
                    | st.just([[1, 2], [3]]) | st.just({1, 2}) | st.just([]) | st.integers()
                    | st.just([np.zeros(SHAPE, np.uint8), "a.png"]) | st.just(np.array(["x"] * 4)))
    return draw(st.sampled_from([x, torch.from_numpy(x)])) if draw(st.booleans()) else x


def images_ok(x) -> bool:
    if torch.is_tensor(x):
        x = x.numpy()
    if not isinstance(x, np.ndarray) or x.ndim == 0 or len(x) == 0:
        return False
    if x.dtype == np.uint8:
        return x.shape[1:] in {SHAPE, (28, 28, 1), (28, 28)}
    if not np.issubdtype(x.dtype, np.floating) or x.shape[1:] != SHAPE:
        return False
    x = x.astype(np.float32)
    return bool(np.isfinite(x).all()) and x.min() >= -1e-3 and x.max() <= 1 + 1e-3


def check_inference(model, method, x, batch_size) -> None:
    call = lambda: getattr(model, method)(x, batch_size)  # noqa: E731
    if not in_range(as_int(batch_size), 1, LIMITS.max_batch_size):
        refused(call, "batch_size")
        event("refused")
        return
    if not images_ok(x):
        with pytest.raises(ValueError) as err:
            call()
        assert re.search(r"image|file", str(err.value)), str(err.value)
        event("refused")
        return
    n = len(x)
    out = call()
    if method == "infer":
        out = torch.cat([out.z, out.proba, out.log_likelihood[:, None], out.bits_per_dim[:, None]], 1)
    expected = {"predict_proba": (n, 10), "predict": (n,), "infer": (n, DIM + 12), "encode": (n, DIM),
                "log_likelihood": (n,), "bits_per_dim": (n,)}[method]
    assert tuple(out.shape) == expected and bool(torch.isfinite(out.float()).all())
    if method == "predict_proba":
        assert torch.allclose(out.sum(1), torch.ones(n), atol=1e-5)
    if method == "predict":
        assert int(out.min()) >= 0 and int(out.max()) <= 9
    event("accepted")


@QUICK
@given(method=st.sampled_from(INFERENCE), x=images(), batch_size=BATCH_SIZE)
def test_inference_arguments(model, method, x, batch_size):
    check_inference(model, method, x, batch_size)


@pytest.mark.slow
@SLOW
@given(method=st.sampled_from(INFERENCE), x=images(), batch_size=BATCH_SIZE)
def test_inference_arguments_many(model, method, x, batch_size):
    check_inference(model, method, x, batch_size)


def test_inference_accepts_image_files_and_refuses_junk(model, folder):
    from PIL import Image

    path = folder / "digit.png"
    Image.fromarray(np.full((40, 30), 200, np.uint8)).save(path)
    for given_as in (str(path), path, path.read_bytes(), [str(path), path.read_bytes()]):
        proba = model.predict_proba(given_as)
        assert proba.shape == (1 if not isinstance(given_as, list) else 2, 10)
    for junk in ("no such file", str(folder), b"\x89PNG\r\n\x1a\n broken", bytearray(b"GIF89a")):
        with pytest.raises(ValueError, match="file|image"):
            model.predict_proba(junk)


# --------------------------------------------------------------------------- ibinn.explore

GRID_CLASSES = mostly(mostly(st.lists(st.integers(0, 9), min_size=1, max_size=3), st.none()),
                      st.lists(st.integers(-1, 10), max_size=3) | st.integers() | st.text(max_size=2)
                      | st.just([True]) | st.just([1.0]) | NOT_NUMBERS)
GRID_N = mostly(st.integers(1, 2), st.integers(-1, 0) | st.integers(5000, 10**30) | FLOATS | NOT_NUMBERS)
GRID_TEMPERATURE = mostly(st.floats(0, 3), FLOATS | st.integers(101, 10**400) | NOT_NUMBERS)
GRID_SEED = mostly(st.integers(0, 10**18), st.integers(-2, 10**20) | NOT_NUMBERS)


def check_sample_grid(model, n_per_class, temperature, seed, classes) -> None:
    class_list = list(range(10)) if classes is None else (
        list(classes) if isinstance(classes, list | tuple | range | np.ndarray) else classes)
    classes_ok = isinstance(class_list, list) and len(class_list) > 0 and all(
        in_range(as_int(k), 0, 9) for k in class_list)
    n_ok = in_range(as_int(n_per_class), 1, LIMITS.max_samples)
    checks = [("n_per_class", n_ok), ("classes", classes_ok),
              ("temperature", in_range(as_real(temperature), 0, 100)),
              ("seed", seed is None or in_range(as_int(seed), 0, 2**63 - 1))]  # None: unseeded
    bad = [name for name, ok in checks if not ok]
    call = lambda: explore.sample_grid(model, n_per_class, temperature, seed, classes)  # noqa: E731
    if bad:
        with pytest.raises(ValueError) as err:
            call()
        message = str(err.value)
        assert any(mentions(message, name) or (name == "classes" and mentions(message, "class_index"))
                   for name in bad), (bad, message)
        event("refused")
        return
    grid = call()
    assert grid.shape == (len(class_list), int(n_per_class), *SHAPE)
    assert np.isfinite(grid).all() and grid.min() >= 0 and grid.max() <= 1
    event("accepted")


@QUICK
@given(n_per_class=GRID_N, temperature=GRID_TEMPERATURE, seed=GRID_SEED, classes=GRID_CLASSES)
def test_sample_grid_arguments(model, n_per_class, temperature, seed, classes):
    check_sample_grid(model, n_per_class, temperature, seed, classes)


@pytest.mark.slow
@settings(SLOW, max_examples=150)
@given(n_per_class=GRID_N, temperature=GRID_TEMPERATURE, seed=GRID_SEED, classes=GRID_CLASSES)
def test_sample_grid_arguments_many(model, n_per_class, temperature, seed, classes):
    check_sample_grid(model, n_per_class, temperature, seed, classes)


TRANSFORM = mostly(st.sampled_from(["noise", "inversion"]),
                   st.just("rgb-rotation") | st.text(max_size=4) | NOT_NUMBERS)
STRENGTH = mostly(st.floats(0, 1) | st.integers(0, 3) | st.just(1e3),
                  st.floats(-1e3, 1e4) | HUGE | FLOATS | NOT_NUMBERS)
STRENGTHS = mostly(st.lists(st.floats(0, 0.5), min_size=1, max_size=3) | st.just(np.array([0.0, 1.0])),
                   st.lists(FLOATS, max_size=3) | st.just([]) | st.just("0.5") | NOT_NUMBERS)
REFERENCE = mostly(st.floats(-3000, 3000), FLOATS | NOT_NUMBERS)
TRANSFORM_SEED = mostly(st.integers(0, 2**63 - 1), st.integers(-2, 2**64) | NOT_NUMBERS)


def check_transforms(model, two_images, name, strength, strengths, reference, seed) -> None:
    image = two_images[0]
    name_ok = isinstance(name, str) and name in ("noise", "inversion")  # RGB rotation: RGB only
    seed_ok = in_range(as_int(seed), 0, 2**63 - 1)
    strength_ok = in_range(as_real(strength), 0, 1e3)
    bad = [n for n, ok in (("name", name_ok), ("strength", strength_ok), ("seed", seed_ok)) if not ok]
    if bad:
        with pytest.raises(ValueError) as err:
            explore.apply_transform(model, image, name, strength, seed)
        message = str(err.value)
        assert any(mentions(message, n) or mentions(message, n.rstrip("s")) for n in bad) or re.search(
            r"unknown transform|channels", message), (bad, message)
    else:
        assert_images(explore.apply_transform(model, image, name, strength, seed), (1, *SHAPE))
        event("transform accepted")
    sequence = isinstance(strengths, list | tuple | np.ndarray)
    values = np.asarray(strengths, dtype=object).reshape(-1) if sequence else None
    strengths_ok = values is not None and len(values) > 0 and all(
        in_range(as_real(s), 0, 1e3) for s in values)
    reference_ok = reference is None or as_real(reference) is not None  # None: the steps' own mean
    bad = [n for n, ok in (("transform", name_ok), ("strengths", strengths_ok),
                           ("reference_nll_mean", reference_ok), ("seed", seed_ok)) if not ok]
    call = lambda: explore.trajectory(model, image, name, strengths, reference, seed)  # noqa: E731
    if bad:
        with pytest.raises(ValueError) as err:
            call()
        message = str(err.value)
        assert any(mentions(message, n) or mentions(message, n.rstrip("s")) for n in bad) or re.search(
            r"unknown transform|channels", message), (bad, message)
        event("refused")
        return
    result = call()
    assert result.images.shape == (len(strengths), *SHAPE)
    for values in (result.z, result.proba, result.bits_per_dim, result.entropy, result.typicality):
        assert np.isfinite(values).all()
    event("accepted")


@QUICK
@given(name=TRANSFORM, strength=STRENGTH, strengths=STRENGTHS, reference=REFERENCE,
       seed=TRANSFORM_SEED)
def test_transform_and_trajectory_arguments(model, two_images, name, strength, strengths, reference, seed):
    check_transforms(model, two_images, name, strength, strengths, reference, seed)


@pytest.mark.slow
@settings(SLOW, max_examples=150)
@given(name=TRANSFORM, strength=STRENGTH, strengths=STRENGTHS, reference=REFERENCE,
       seed=TRANSFORM_SEED)
def test_transform_and_trajectory_arguments_many(model, two_images, name, strength, strengths, reference,
                                                 seed):
    check_transforms(model, two_images, name, strength, strengths, reference, seed)


METHOD = mostly(st.sampled_from(["pca", "pca-means"]), st.text(max_size=4) | NOT_NUMBERS)
MAX_POINTS = mostly(st.integers(2, 20) | st.just(5000), st.integers(-1, 1) | NOT_NUMBERS)


@st.composite
def latent_sets(draw):
    kind = draw(st.sampled_from(["good", "good", "good", "good", "wild", "shape", "other"]))
    if kind in ("good", "wild"):
        shape = (draw(st.integers(2, 12)), draw(st.sampled_from([4, 4, 4, 2, 5])))
        elements = st.floats(-10, 10) if kind == "good" else ELEMENT
        return draw(hnp.arrays(np.float64, shape, elements=elements, fill=st.floats(-1, 1)))
    if kind == "shape":
        return np.ones(draw(st.sampled_from([(1, 4), (5, 1), (5,), (), (0, 4), (2, 2, 2)])))
    return draw(st.none() | st.text(max_size=3) | st.just([[1, 2], [3]]) | st.just({"z": 1}))


def latents_ok(a, min_rows: int = 2) -> bool:
    if not isinstance(a, np.ndarray) or a.ndim != 2 or len(a) < min_rows or a.shape[1] < 2:
        return False
    with np.errstate(over="ignore"):
        return bool(np.isfinite(a.astype(np.float32)).all())


def check_projection(method, z, mu, max_points) -> None:
    method_ok = isinstance(method, str) and method in ("pca", "pca-means")
    points_ok = in_range(as_int(max_points), 2, 2**62)
    # the means' PCA needs only one latent to project; the latents' PCA needs two
    shapes_ok = (latents_ok(z, 1 if method_ok and method == "pca-means" else 2) and latents_ok(mu)
                 and z.shape[1] == mu.shape[1])
    bad = [n for n, ok in (("method", method_ok), ("max_points", points_ok), ("z", shapes_ok),
                           ("mu", shapes_ok)) if not ok]
    if bad:
        with pytest.raises(ValueError) as err:
            explore.fit_projection(method, z, mu, max_points=max_points)
        message = str(err.value)
        assert any(names(message, n) for n in bad) or (not method_ok and "projection" in message), (
            bad, message)
        event("refused")
        return
    with np.errstate(all="ignore"):  # constant data: a PCA of zero variance is still a projection
        projection = explore.fit_projection(method, z, mu, max_points=max_points)
        points = projection.transform(z)
    assert points.shape == (len(z), 2) and np.isfinite(points).all()
    event("accepted")


@QUICK
@given(method=METHOD, z=latent_sets(), mu=latent_sets(), max_points=MAX_POINTS)
def test_fit_projection_arguments(method, z, mu, max_points):
    check_projection(method, z, mu, max_points)


@pytest.mark.slow
@settings(SLOW, max_examples=150)
@given(method=METHOD, z=latent_sets(), mu=latent_sets(), max_points=MAX_POINTS)
def test_fit_projection_arguments_many(method, z, mu, max_points):
    check_projection(method, z, mu, max_points)


def test_explore_edge_cases(model, two_images):
    image = two_images[0]
    refused(lambda: explore.trajectory(model, image, "noise", [0.1], math.nan), "reference_nll_mean")
    refused(lambda: explore.trajectory(model, image, "noise", "0.5", 0.0), "strengths")
    refused(lambda: explore.sample_grid(model, 1, classes=5), "classes")
    with pytest.raises(ValueError, match="unknown transform"):
        explore.apply_transform(model, image, ["noise"], 0.1)
    assert_images(explore.apply_transform(model, image, "inversion", 5.0), (1, *SHAPE))
    z, mu = np.random.default_rng(0).normal(size=(2, 6, 4))
    with pytest.raises(ValueError, match="unknown projection"):
        explore.fit_projection(["pca"], z, mu)
    refused(lambda: explore.fit_projection("pca", None, mu), "z")
    refused(lambda: explore.fit_projection("pca", z[:1], mu), "z")
    refused(lambda: explore.fit_projection("pca", z, mu[:, :3]), "mu")
    refused(lambda: explore.fit_projection("pca-means", z, np.where(mu > 1, np.nan, mu)), "mu")
    assert explore.fit_projection("pca-means", z[:1], mu).transform(z[:1]).shape == (1, 2)


# =========================================================================== the global RNGs

def rng_states() -> tuple:
    state = np.random.get_state()
    return torch.random.get_rng_state(), (state[0], state[1].copy(), *state[2:]), random.getstate()


def assert_same_rng_states(before: tuple, after: tuple) -> None:
    assert torch.equal(before[0], after[0]), "torch's global RNG changed"
    assert before[1][0] == after[1][0] and np.array_equal(before[1][1], after[1][1]) \
        and before[1][2:] == after[1][2:], "numpy's global RNG changed"
    assert before[2] == after[2], "Python's global RNG changed"


def test_building_and_loading_leave_the_global_rngs_alone(model_file, folder):
    torch.manual_seed(123)
    np.random.seed(456)
    random.seed(789)
    torch.rand(3), np.random.rand(3), random.random()  # a state other than a fresh seed's
    before = rng_states()
    config = ibinn.ModelConfig.from_preset("tiny", SHAPE, n_classes=10, seed=5)
    built = ibinn.IBINN(config)
    loaded = ibinn.load(model_file, device="cpu")
    baseline = ResNetClassifier(config)
    baseline_loaded = ibinn.load(baseline.save(folder / "rng-resnet.safetensors"), device="cpu")
    assert_same_rng_states(before, rng_states())
    # the builds did draw random numbers, from their own seed: the check above is not vacuous
    torch.manual_seed(0)
    np.random.seed(0)
    again = ibinn.IBINN(config)
    for (key, a), b in zip(built.state_dict().items(), again.state_dict().values(), strict=True):
        assert torch.equal(a, b), key
    other = ibinn.IBINN(ibinn.ModelConfig.from_preset("tiny", SHAPE, n_classes=10, seed=6))
    key = next(k for k in built.state_dict() if k.endswith("w_perm"))
    assert not torch.equal(built.state_dict()[key], other.state_dict()[key])
    assert isinstance(loaded, ibinn.IBINN) and isinstance(baseline_loaded, ResNetClassifier)


def test_models_built_in_threads_are_those_built_alone():
    configs = [ibinn.ModelConfig.from_preset("tiny", SHAPE, n_classes=10, seed=s) for s in range(4)]
    alone = [ibinn.IBINN(c).state_dict() for c in configs]
    threaded: list = [None] * len(configs)

    def build(i: int) -> None:
        threaded[i] = ibinn.IBINN(configs[i]).state_dict()

    threads = [threading.Thread(target=build, args=(i,)) for i in range(len(configs))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for a, b in zip(alone, threaded, strict=True):
        assert all(torch.equal(a[k], b[k]) for k in a)


def test_building_in_one_thread_never_changes_another_threads_draws():
    """A thread that seeds torch's and numpy's global RNGs and draws 400 numbers from each gets the
    same numbers while another thread builds models: the builds draw from private generators, never
    the global ones (which they used to seed for a moment and restore: 160 of 400 draws changed)."""
    def draw(generator: torch.Generator | None = None) -> int:
        return torch.empty((), dtype=torch.int64).random_(generator=generator).item()

    reference, np_reference = torch.Generator().manual_seed(11), np.random.RandomState(11)
    expected = [(draw(reference), np_reference.randint(2**31)) for _ in range(400)]
    building, finished = threading.Event(), threading.Event()

    def build() -> None:
        config = ibinn.ModelConfig.from_preset("tiny", SHAPE, n_classes=10, seed=9)
        while not finished.is_set():
            ibinn.IBINN(config)
            ResNetClassifier(config)
            building.set()

    builder = threading.Thread(target=build)
    builder.start()
    try:
        building.wait()
        torch.manual_seed(11)
        np.random.seed(11)
        drawn = []
        for _ in range(400):
            drawn.append((draw(), np.random.randint(2**31)))
            time.sleep(0.001)  # the builder's turn
    finally:
        finished.set()
        builder.join()
    changed = [sum(a[i] != b[i] for a, b in zip(drawn, expected, strict=True)) for i in (0, 1)]
    assert changed == [0, 0], f"{changed[0]} torch and {changed[1]} numpy draws of 400 changed"


def test_api_calls_with_a_seed_leave_the_global_rngs_alone(model, two_images):
    torch.manual_seed(1)
    before = rng_states()
    model.sample(1, 2, seed=3)
    explore.sample_grid(model, 1, seed=3, classes=[0, 1])
    explore.apply_transform(model, two_images[0], "noise", 0.2, seed=3)
    model.predict_proba(two_images[0])
    assert_same_rng_states(before, rng_states())

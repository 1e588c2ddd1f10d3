import math

import pytest
import torch

import ibinn
from ibinn.baselines import MODEL_TYPES, ResNetClassifier
from ibinn.checkpoint import load_weights, save_weights
from ibinn.model import PRESETS, ImageClassifier

from .conftest import randomize


@pytest.mark.parametrize("preset", list(PRESETS))
@pytest.mark.parametrize("shape", [(1, 28, 28), (3, 32, 32)])
def test_round_trip_every_preset(preset, shape):
    model = randomize(ibinn.IBINN(ibinn.ModelConfig.from_preset(preset, shape, 10)), scale=0.02)
    x = torch.rand(4, *shape)
    z = model.encode(x)
    assert z.shape == (4, math.prod(shape))
    assert (model.decode(z) - x).abs().max() < 1e-4


@pytest.mark.parametrize("shape,dct", [((1, 8, 8), False), ((3, 8, 8), True)])
def test_log_det_matches_autograd_jacobian(shape, dct):
    config = ibinn.ModelConfig(shape, 3, levels=[2, 1], widths=[8, 8], fc_blocks=1, fc_width=16,
                               dct_pooling=dct)
    model = randomize(ibinn.IBINN(config), scale=0.3).double().eval()
    x = torch.randn(1, *shape, dtype=torch.float64)
    with torch.no_grad():
        _, log_det = model(x)
    jac = torch.autograd.functional.jacobian(lambda v: model(v.view(1, *shape))[0].flatten(),
                                             x.flatten())
    expected = torch.linalg.slogdet(jac)[1]
    assert abs(float(log_det) - float(expected)) < 1e-3
    assert abs(float(log_det)) > 1e-2  # the check is not trivial: the flow is not volume preserving


def test_inference_api_shapes_and_consistency(tiny_grey, demo_fm):
    x = demo_fm.images[:16]
    out = tiny_grey.infer(x)
    assert out.z.shape == (16, 784) and out.log_posterior.shape == (16, 10)
    assert torch.allclose(out.proba.sum(1), torch.ones(16), atol=1e-5)
    assert torch.equal(tiny_grey.predict(x), out.log_posterior.argmax(1))
    assert torch.allclose(tiny_grey.log_likelihood(x), out.log_likelihood)
    expected_bpd = (784 * math.log(256) - out.log_likelihood) / (784 * math.log(2))
    assert torch.allclose(tiny_grey.bits_per_dim(x), expected_bpd)
    # uint8 in three layouts and float in [0, 1] give the same answer
    same = [x, x.permute(0, 2, 3, 1), x[:, 0], x.float() / 255, x.numpy()]
    for variant in same:
        assert torch.allclose(tiny_grey.encode(variant), out.z, atol=1e-5)


def test_sample_and_interpolate(tiny_grey, demo_fm):
    s1 = tiny_grey.sample(3, 5, temperature=0.7, seed=1)
    s2 = tiny_grey.sample(3, 5, temperature=0.7, seed=1)
    assert s1.shape == (5, 1, 28, 28) and torch.equal(s1, s2)
    assert float(s1.min()) >= 0 and float(s1.max()) <= 1
    path = tiny_grey.interpolate(demo_fm.images[0], demo_fm.images[1:2], steps=6)
    assert path.shape == (6, 1, 28, 28)
    assert torch.allclose(path[0], demo_fm.images[0].float() / 255, atol=1e-4)
    assert torch.allclose(path[-1], demo_fm.images[1].float() / 255, atol=1e-4)
    with pytest.raises(ValueError, match="class_index"):
        tiny_grey.sample(10, 1)


@pytest.mark.parametrize("bad,match", [
    (torch.zeros(2, 3, 28, 28, dtype=torch.uint8), r"\(N, 1, 28, 28\)"),
    (torch.zeros(2, 1, 32, 32), r"\(N, 1, 28, 28\)"),
    (torch.zeros(1, 28, 28), r"float \(1, 28, 28\)"),
    (torch.zeros(2, 1, 28, 28, dtype=torch.int64), "dtype torch.int64"),
    (torch.full((2, 1, 28, 28), 255.0), r"in \[0, 1\]"),
    (torch.full((2, 1, 28, 28), float("nan")), "NaN"),
    (torch.zeros(0, 1, 28, 28), "empty"),
])
def test_bad_inputs_raise_clear_errors(tiny_grey, bad, match):
    with pytest.raises(ValueError, match=match):
        tiny_grey.predict_proba(bad)


def test_decode_rejects_wrong_latent_size(tiny_grey):
    with pytest.raises(ValueError, match=r"latents \(N, 784\)"):
        tiny_grey.decode(torch.zeros(2, 100))


def test_save_load_round_trip(tmp_path, tiny_grey, demo_fm):
    x = demo_fm.images[:8]
    path = tiny_grey.save(tmp_path / "m.safetensors")
    loaded = ibinn.load(path, device="cpu")
    assert loaded.config == tiny_grey.config
    assert torch.allclose(loaded.infer(x).log_likelihood, tiny_grey.infer(x).log_likelihood, atol=1e-4)
    # fp16 storage: still exactly invertible, nearly the same function
    half = ibinn.load(tiny_grey.save(tmp_path / "h.safetensors", half=True), device="cpu")
    assert (half.decode(half.encode(x)) - x.float() / 255).abs().max() < 1e-4
    assert (half.predict_proba(x) - tiny_grey.predict_proba(x)).abs().max() < 1e-2
    # the fully-connected permutation is stored as indices, not a 784x784 matrix
    assert (tmp_path / "m.safetensors").stat().st_size < 4 * tiny_grey.num_parameters() + 200_000


def test_corrupt_and_foreign_checkpoints(tmp_path, tiny_grey):
    path = tiny_grey.save(tmp_path / "m.safetensors")
    data = path.read_bytes()
    (tmp_path / "truncated.safetensors").write_bytes(data[: len(data) // 2])
    (tmp_path / "garbage.safetensors").write_bytes(b"not a checkpoint at all" * 10)
    from safetensors.torch import save_file
    save_file({"w": torch.zeros(3)}, tmp_path / "foreign.safetensors")
    for name, match in [("truncated", "corrupt or truncated"), ("garbage", "corrupt or truncated"),
                        ("foreign", "not an ibinn model"), ("missing", "no model")]:
        with pytest.raises(ibinn.CheckpointError, match=match):
            ibinn.load(tmp_path / f"{name}.safetensors")


def test_regularised_class_nll_fixes_means_on_sphere():
    config = ibinn.ModelConfig.from_preset("tiny", (1, 28, 28), 10, fixed_mu_radius=28.0,
                                           mode="class-nll-reg")
    model = ibinn.IBINN(config)
    assert not model.mu.requires_grad
    assert torch.allclose(model.mu.norm(dim=1), torch.full((10,), 28.0))


CAPABILITIES = ["classify", "calibrated probabilities", "likelihood", "OoD score", "sample",
                "interpolate", "exact inverse"]


@pytest.mark.parametrize("name", list(MODEL_TYPES))
def test_every_model_type_declares_the_interface(name, tmp_path, demo_fm):
    cls = MODEL_TYPES[name]
    assert issubclass(cls, ImageClassifier) and cls.model_type == name
    capabilities = cls.capabilities()
    assert list(capabilities) == CAPABILITIES and all(type(v) is bool for v in capabilities.values())
    assert capabilities["classify"] and capabilities["likelihood"] == cls.has_likelihood
    # what a capability declares, the model does
    model = cls(ibinn.ModelConfig.from_preset("tiny", (1, 28, 28), 10))
    x = demo_fm.images[:4]
    assert (model.infer(x).log_likelihood is not None) == cls.has_likelihood
    for method, flag in (("sample", "can_sample"), ("interpolate", "can_interpolate"),
                         ("decode", "exact_inverse")):
        assert hasattr(model, method) == getattr(cls, flag), method
    # save / from_file, written once for all: the same function back, the type in the config
    path = model.save(tmp_path / "m.safetensors")
    assert load_weights(path)[1]["model_type"] == name
    for loaded in (cls.from_file(path), ibinn.load(path, device="cpu")):
        assert type(loaded) is cls and loaded.config == model.config and not loaded.training
        assert all(torch.equal(a, b) for a, b in zip(loaded.state_dict().values(),
                                                     model.state_dict().values(), strict=True))
        assert torch.equal(loaded.predict_proba(x), model.predict_proba(x))


def test_the_ibinn_declares_what_the_baselines_do_not():
    ibinn_caps, resnet_caps = ibinn.IBINN.capabilities(), ResNetClassifier.capabilities()
    assert all(ibinn_caps.values())
    assert [k for k, v in resnet_caps.items() if v] == ["classify"]


def test_files_without_a_model_type_are_ibinns(tmp_path, tiny_grey):
    """Files written before the baselines (the shipped ones among them) name no type."""
    tensors, config = load_weights(tiny_grey.save(tmp_path / "m.safetensors"))
    del config["model_type"]
    save_weights(tmp_path / "old.safetensors", tensors, config)
    assert type(ibinn.load(tmp_path / "old.safetensors", device="cpu")) is ibinn.IBINN


def test_an_ibinn_file_that_does_not_invert_is_refused(tmp_path, tiny_grey):
    tensors, config = load_weights(tiny_grey.save(tmp_path / "m.safetensors"))
    for key in [k for k in tensors if k.endswith("global_scale")]:  # right names, shapes, finite
        tensors[key] = torch.full_like(tensors[key], 1e30)
    save_weights(tmp_path / "bad.safetensors", tensors, config)
    with pytest.raises(ibinn.CheckpointError, match="does not invert its own output"):
        ibinn.IBINN.from_file(tmp_path / "bad.safetensors")

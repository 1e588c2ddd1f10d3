import math

import pytest
import torch

import ibinn
from ibinn.baselines import MODEL_TYPES, ResNetClassifier
from ibinn.checkpoint import load_weights, save_weights
from ibinn.invertible import DownsamplingCoupling
from ibinn.model import PRESETS, ImageClassifier

from .conftest import randomize


# "paper" starts, as the official code does, with every block scaling by 0.75: its 56 blocks make
# an untrained network too ill-conditioned to invert in float32; its parts are checked below
@pytest.mark.parametrize("preset", [p for p in PRESETS if p != "paper"])
@pytest.mark.parametrize("shape", [(1, 28, 28), (3, 32, 32)])
def test_round_trip_every_preset(preset, shape):
    model = randomize(ibinn.IBINN(ibinn.ModelConfig.from_preset(preset, shape, 10)), scale=0.02)
    x = torch.rand(4, *shape)
    z = model.encode(x)
    assert z.shape == (4, math.prod(shape))
    assert (model.decode(z) - x).abs().max() < 1e-4


#: The paper preset's kinds of blocks (coupling downsampling, official subnets, GLOW block,
#: exponential global scale), two levels deep instead of 56 blocks.
SHALLOW_PAPER = dict(levels=[2, 1], widths=[8, 8], dropout=[0.0, 0.25], fc_width=16)


@pytest.mark.parametrize("shape,arch", [((1, 8, 8), dict(dct_pooling=False)),
                                        ((3, 8, 8), dict(dct_pooling=True)),
                                        ((1, 8, 8), {**PRESETS["paper"], **SHALLOW_PAPER}),
                                        ((3, 8, 8), {**PRESETS["paper"], **SHALLOW_PAPER})])
def test_log_det_matches_autograd_jacobian(shape, arch):
    arch = {k: v for k, v in arch.items() if not k.endswith("_grey")}
    config = ibinn.ModelConfig(shape, 3, **{"levels": [2, 1], "widths": [8, 8], "fc_blocks": 1,
                                            "fc_width": 16, **arch})
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


@pytest.mark.parametrize("mu_init", [5.0, 18.0])
def test_regularised_class_nll_keeps_the_official_means_mu_init_apart(demo_fm, mu_init):
    """The official class_nll_reg_{5,10,18} runs freeze μ at its initialisation: orthogonal
    means ``mu_init`` apart, radius ``mu_init/√2`` (not √D)."""
    from ibinn.train import TrainConfig

    config = TrainConfig(dataset="demo:fashion-mnist", mode="class-nll-reg", preset="tiny",
                         model_overrides={"mu_init": mu_init})
    mu = config.build_model(demo_fm).mu
    assert not mu.requires_grad
    assert torch.allclose(mu.norm(dim=1), torch.full((10,), mu_init / math.sqrt(2)))
    distances = torch.cdist(mu, mu)[~torch.eye(10, dtype=torch.bool)]
    assert torch.allclose(distances, torch.full_like(distances, mu_init), atol=1e-4)


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


# ---------------------------------------------------------------- the paper preset (issue 17)
def _block_parameters(inn) -> list[tuple[str, int]]:
    return [(type(m).__name__, sum(p.numel() for p in m.parameters() if p.requires_grad))
            for m in inn.module_list]


def test_paper_preset_is_the_official_cifar10_network():
    """The official code (github.com/VLL-HD/IB-INN, default.ini and inn_architecture.py) builds,
    for 3 × 32 × 32: [8 couplings, downsampling coupling, 24, downsampling coupling, 24], DCT
    pooling, a random permutation and one GLOW coupling. Its trainable parameters, counted by hand
    from that code (μ and Φ aside), block by block:

    - level 1 coupling, 3 channels split 2 | 1, subnet width 16: 3×3 conv 2→16 (288), BN (32),
      3×3 conv 16→16 (2,304), BN (32), 1×1 conv 16→2 with bias (34), ActNorm scale and
      offset (6): 2,696;
    - downsampling 1 (split 1 | 2, width 32): strided subnet 1→16: 288 + 64 + 9,216 + 64 + 528 =
      10,160; low-res subnet 8→8: 2,304 + 64 + 9,216 + 64 + 264 = 11,912; together 22,072;
    - level 2 coupling, 12 channels split 6 | 6, width 32: 1,728 + 64 + 9,216 + 64 + 396 + 24 =
      11,492;
    - downsampling 2 (split 6 | 6, width 64): 6→48: 3,456 + 128 + 36,864 + 128 + 3,120 = 43,696;
      24→48: 13,824 + 128 + 36,864 + 128 + 3,120 = 54,064; together 97,760;
    - level 3 coupling, 48 channels split 24 | 24, width 64: 13,824 + 128 + 36,864 + 128 + 3,120
      + 96 = 54,160;
    - GLOW coupling over 3,072 features, two subnets 1,536 → 1,024 → 3,072:
      2 × (1,573,888 + 3,148,800) = 9,445,376.

    Total 8 × 2,696 + 22,072 + 24 × 11,492 + 97,760 + 24 × 54,160 + 9,445,376 = 11,162,424.
    """
    config = ibinn.ModelConfig.from_preset("paper", (3, 32, 32), 10)
    blocks = _block_parameters(ibinn.model.build_inn(config))
    coupling = "AllInOneBlock"
    expected = ([(coupling, 2_696)] * 8 + [("DownsamplingCoupling", 22_072)]
                + [(coupling, 11_492)] * 24 + [("DownsamplingCoupling", 97_760)]
                + [(coupling, 54_160)] * 24
                + [("DCTPooling", 0), ("PermuteRandom", 0), ("GLOWCouplingBlock", 9_445_376)])
    assert blocks == expected
    assert sum(n for _, n in blocks) == 11_162_424
    assert (config.clamp, config.fc_clamp, config.act_norm) == (0.7, 2.0, 0.75)


def test_paper_preset_grey_is_the_official_mnist_network():
    """For 28 × 28 grey images the official code squeezes with Haar wavelets in place of the first
    level: Haar, 24 couplings (4 channels, width 32: 10,060 each), downsampling coupling (39,312 +
    42,768), 24 couplings (16 channels, width 64: 42,800 each), DCT, GLOW over 784 features
    (2 × (392·1,024 + 1,024 + 1,024·784 + 784)); 3,762,784 in all, by hand as above."""
    blocks = _block_parameters(ibinn.model.build_inn(
        ibinn.ModelConfig.from_preset("paper", (1, 28, 28), 10)))
    expected = ([("HaarDownsampling", 0)] + [("AllInOneBlock", 10_060)] * 24
                + [("DownsamplingCoupling", 82_080)] + [("AllInOneBlock", 42_800)] * 24
                + [("DCTPooling", 0), ("PermuteRandom", 0), ("GLOWCouplingBlock", 2_412_064)])
    assert blocks == expected and sum(n for _, n in blocks) == 3_762_784


def test_paper_preset_subnets_have_batch_norm_and_the_official_dropout():
    model = ibinn.IBINN(ibinn.ModelConfig.from_preset("paper", (3, 32, 32), 10))
    def dropout_rates(module):
        return sorted({m.p for m in module.modules() if isinstance(m, torch.nn.Dropout | torch.nn.Dropout2d)})
    couplings = [m for m in model.inn.module_list if type(m).__name__ == "AllInOneBlock"]
    assert [dropout_rates(m) for m in couplings[::8]] == [[0.0]] * 4 + [[0.25]] * 3
    assert all(any(isinstance(m, torch.nn.BatchNorm2d) for m in c.modules()) for c in couplings)
    assert dropout_rates(model.inn.module_list[-1]) == [0.5]
    # the first subnet reads the image: it alone does not start with a ReLU
    firsts = [type(c.subnet[0]).__name__ for c in couplings]
    assert firsts[0] == "Conv2d" and set(firsts[1:]) == {"ReLU"}


@pytest.mark.parametrize("channels", [3, 12])
def test_downsampling_coupling_inverts_and_its_log_det_is_the_jacobians(channels):
    def subnet(stride):
        return lambda c_in, c_out: torch.nn.Sequential(
            torch.nn.Conv2d(c_in, 8, 3, stride, padding=1), torch.nn.Tanh(),
            torch.nn.Conv2d(8, c_out, 3, padding=1))
    torch.manual_seed(0)
    block = DownsamplingCoupling([(channels, 4, 4)], subnet_strided=subnet(2),
                                 subnet_low_res=subnet(1), clamp=0.7).double()
    assert block.output_dims([(channels, 4, 4)]) == [(4 * channels, 2, 2)]
    x = torch.randn(1, channels, 4, 4, dtype=torch.float64)
    with torch.no_grad():
        (y,), log_det = block([x])
        (x_back,), log_det_back = block([y], rev=True)
    assert y.shape == (1, 4 * channels, 2, 2)
    assert torch.allclose(x_back, x, atol=1e-10) and torch.allclose(log_det_back, -log_det)
    jac = torch.autograd.functional.jacobian(
        lambda v: block([v.view(1, channels, 4, 4)])[0][0].flatten(), x.flatten())
    assert abs(float(log_det) - float(torch.linalg.slogdet(jac)[1])) < 1e-8
    assert abs(float(log_det)) > 1e-2  # not volume preserving: the check is not trivial


def test_shallow_paper_network_round_trips_and_keeps_batch_norm_statistics(tmp_path, demo_fm):
    config = ibinn.ModelConfig.from_preset("paper", (1, 28, 28), 10, **SHALLOW_PAPER)
    model = ibinn.IBINN(config)
    x = demo_fm.images[:16]
    model.train()
    with torch.no_grad():  # a training pass moves the batch-norm statistics off their start
        model(model.normalization.normalize(x.float() / 255))
    assert (model.decode(model.encode(x)) - x.float() / 255).abs().max() < 1e-4
    loaded = ibinn.load(model.save(tmp_path / "m.safetensors"), device="cpu")
    assert loaded.config == config
    assert torch.equal(loaded.predict_proba(x), model.predict_proba(x))


@pytest.mark.parametrize("overrides,match", [
    (dict(dropout=[0.1, 0.1]), "need subnet 'official'"),
    (dict(subnet="official", dropout=[0.1]), "one rate per level"),
    (dict(subnet="official", fc_dropout=1.0), "fc_dropout"),
    (dict(downsampling="bicubic"), "downsampling must be one of"),
    (dict(fc_coupling="maf"), "fc_coupling must be one of"),
    (dict(global_affine="sigmoid"), "global_affine must be one of"),
    (dict(fc_clamp=0.0), "fc_clamp"),
])
def test_bad_architecture_fields_are_refused(overrides, match):
    with pytest.raises(ValueError, match=match):
        ibinn.ModelConfig.from_preset("tiny", (1, 28, 28), 10, **overrides)


def test_configs_saved_before_the_paper_fields_load_as_before():
    """Checkpoints written before issue 17 lack the new fields: they mean what they meant."""
    config = ibinn.ModelConfig.from_preset("small", (1, 28, 28), 10)
    old = {k: v for k, v in config.to_json().items()
           if k not in ("subnet", "dropout", "fc_dropout", "fc_coupling", "fc_clamp", "global_affine")}
    assert ibinn.ModelConfig.from_json(old) == config
    assert (config.subnet, config.fc_coupling, config.global_affine) == ("plain", "allinone", "softplus")

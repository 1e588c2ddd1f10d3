"""The discriminative baselines: same harness (training, persistence, evaluation, zoo) as the IB-INN."""

import math

import FrEIA.modules as Fm
import pytest
import torch

import ibinn
from ibinn import data as D
from ibinn import zoo
from ibinn.baselines import BASELINES, IRevNetClassifier, ResNetClassifier, VIBClassifier
from ibinn.cli import main
from ibinn.evaluate import evaluate, markdown_table
from ibinn.model import PRESETS
from ibinn.train import STATE_FILE, TrainConfig, train

from .conftest import assert_same_weights


def _config(out, **kw) -> TrainConfig:
    base = dict(dataset="demo:fashion-mnist", preset="tiny", epochs=1, batch_size=64, val_size=200,
                checkpoint_every=5, device="cpu", out=str(out))
    return TrainConfig(**(base | kw))


def _tiny(cls, **kw):
    return cls(ibinn.ModelConfig.from_preset("tiny", (1, 28, 28), 10, mean=[0.286], std=[0.353], **kw))


@pytest.fixture(scope="module", params=list(BASELINES))
def trained(request, tmp_path_factory):
    """Each baseline trained for one epoch (28 steps) of the demo data, with its live figures."""
    seen = []
    out = tmp_path_factory.mktemp(request.param) / "run"
    result = train(_config(out, model=request.param), callback=seen.append, progress=False)
    return request.param, result, seen


def _loss(model, data: ibinn.ImageData) -> float:
    """The training loss on clean images with the training run's label smoothing."""
    x = model.normalization.normalize(D.to_unit(data.images))
    y = D.smooth_labels(data.labels, 10, 0.05)
    model.eval()
    with torch.no_grad():
        return float(model.loss(*model(x), y))


def test_trains_and_loss_falls(trained, demo_fm):
    name, result, seen = trained
    model = result.model
    assert type(model) is BASELINES[name] and not model.has_likelihood
    assert result.metrics["steps"] == 1350 // 64  # the demo training part (1,500) less 150
    assert "test_bits_per_dim" not in result.metrics  # absent, as the dashboard expects
    assert "val_bits_per_dim" not in result.history[-1]
    assert result.history[-1]["val_error"] < 0.6  # chance is 0.9
    live = [r for r in seen if "loss" in r and "val_error" not in r]
    assert live and all("bits_per_dim" not in r for r in live)
    assert live[-1]["loss"] < live[0]["loss"]
    # the same model as built before the first step (initial weights depend on the seed only)
    initial = type(model)(model.config)
    before, after = _loss(initial, demo_fm), _loss(model, demo_fm)
    assert after < before - 0.3, (before, after)


def test_save_load_round_trip(trained, tmp_path, demo_fm):
    name, result, _ = trained
    model, x = result.model, demo_fm.images[:64]
    from_run = ibinn.load(result.out, device="cpu")  # the run folder's model.safetensors
    path = model.save(tmp_path / "m.safetensors")
    loaded = ibinn.load(path, device="cpu")
    for other in (from_run, loaded):
        assert type(other) is type(model) and other.config == model.config
        assert torch.equal(other.predict(x), model.predict(x))
        assert torch.allclose(other.predict_proba(x), model.predict_proba(x), atol=1e-6)
    half = ibinn.load(model.save(tmp_path / "h.safetensors", half=True), device="cpu")
    assert (half.predict_proba(x) - model.predict_proba(x)).abs().max() < 1e-2
    # i-RevNet: the fully-connected permutation is stored as indices, as for the IB-INN
    assert path.stat().st_size < 4 * model.num_parameters() + 200_000
    with pytest.raises(ibinn.CheckpointError, match="not an IB-INN"):
        ibinn.IBINN.from_file(path)
    other_type = next(cls for key, cls in BASELINES.items() if key != name)
    with pytest.raises(ibinn.CheckpointError, match=f"holds a '{name}' model"):
        other_type.from_file(path)
    assert model.describe().startswith(type(model).title)


@pytest.mark.parametrize("preset", list(PRESETS))
@pytest.mark.parametrize("shape", [(1, 28, 28), (3, 32, 32)])
def test_parameter_counts_match_the_ibinn(preset, shape):
    config = ibinn.ModelConfig.from_preset(preset, shape, 10)
    reference = ibinn.IBINN(config).num_parameters()
    for cls in (ResNetClassifier, IRevNetClassifier):
        count = cls(config).num_parameters()
        assert abs(count / reference - 1) < 0.10, (cls.__name__, count, reference)


@pytest.mark.parametrize("subnet", ["plain", "official"])
def test_resnet_replaces_each_coupling_by_a_residual_block(subnet):
    """Each coupling becomes ``x + f(x)``, ``f`` of the couplings' subnet design (batch norm for
    the official code's) at the parameter count of the coupling it replaces."""
    config = ibinn.ModelConfig.from_preset("small", (3, 32, 32), 10, subnet=subnet)
    inn = ibinn.IBINN(config).inn
    resnet = ResNetClassifier(config)
    assert len(resnet.body) == len(inn.module_list)
    for layer, module in zip(resnet.body, inn.module_list, strict=True):
        if isinstance(module, Fm.AllInOneBlock):
            assert type(layer).__name__ == "_Residual"
            coupling = sum(p.numel() for p in module.parameters() if p.requires_grad)
            assert abs(sum(p.numel() for p in layer.parameters()) / coupling - 1) < 0.05
            has_norm = any(isinstance(m, torch.nn.BatchNorm2d) for m in layer.modules())
            assert has_norm == (subnet == "official" and layer_is_conv(module))
        else:  # the same parameter-free downsampling and pooling
            assert type(layer.module) is type(module)
    x = torch.randn(2, 3, 32, 32)
    assert resnet.body(x).shape == (2, 3072)


def layer_is_conv(coupling: Fm.AllInOneBlock) -> bool:
    return coupling.input_rank == 2


@pytest.mark.parametrize("name", list(BASELINES))
def test_no_likelihood_is_a_clear_error(name, demo_fm):
    model = _tiny(BASELINES[name])
    x = demo_fm.images[:4]
    out = model.infer(x)
    assert out.log_likelihood is None and out.bits_per_dim is None
    assert out.log_posterior.shape == (4, 10)
    assert torch.allclose(out.proba.sum(1), torch.ones(4), atol=1e-5)
    for ask in (model.log_likelihood, model.bits_per_dim):
        with pytest.raises(ibinn.NoLikelihoodError, match="no likelihood p\\(x\\)"):
            ask(x)
    # the IB-INN's input validation, not a copy of it
    with pytest.raises(ValueError, match=r"\(N, 1, 28, 28\)"):
        model.predict_proba(torch.zeros(2, 3, 28, 28, dtype=torch.uint8))
    assert torch.equal(model.predict(x[:, 0]), model.predict(x.float() / 255))


def test_vib_loss_beta_and_sampling(demo_fm):
    model = _tiny(VIBClassifier, gamma=2.0)
    assert model.beta == pytest.approx(1 / (2.0 * 784))
    x = model.normalization.normalize(D.to_unit(demo_fm.images[:16]))
    y = D.smooth_labels(demo_fm.labels[:16], 10, 0.05)
    with torch.no_grad():
        mean, log_var = model.bottleneck(model.encoder(x)).chunk(2, dim=1)
        q = torch.distributions.Normal(mean, (0.5 * log_var).exp())
        kl = torch.distributions.kl_divergence(q, torch.distributions.Normal(0.0, 1.0)).sum(1)
        model.train()
        (a, info), (b, _) = model(x), model(x)
        assert not torch.allclose(a, b)  # a reparameterised sample while training
        assert torch.allclose(info, kl, rtol=1e-4)
        model.eval()
        logits, info = model(x)
        assert torch.allclose(logits, model.head(mean))  # the mean at test time
        expected = torch.nn.functional.cross_entropy(logits, y) + kl.mean() / (2.0 * 784)
        assert float(model.loss(logits, info, y)) == pytest.approx(float(expected), rel=1e-5)
    assert torch.allclose(model.info_loss(demo_fm.images[:16]), kl, rtol=1e-4)
    assert torch.allclose(model.encode(demo_fm.images[:16]), mean, atol=1e-5)
    with pytest.raises(ValueError, match="gamma > 0"):
        _tiny(VIBClassifier, gamma=0.0)
    assert _tiny(VIBClassifier, gamma=math.inf).beta == 0.0


def test_vib_resumes_exactly(tmp_path):
    """The VIB's sampling noise is a function of (seed, step), so an interrupted run resumes exactly."""
    full = train(_config(tmp_path / "a", model="vib", epochs=0.5), progress=False)
    calls = {"n": 0}

    def stop_after_6() -> bool:
        calls["n"] += 1
        return calls["n"] >= 6

    cfg = _config(tmp_path / "b", model="vib", epochs=0.5)
    assert not train(cfg, should_stop=stop_after_6, progress=False).finished
    assert (tmp_path / "b" / STATE_FILE).exists()
    resumed = train(cfg, resume=True, progress=False)
    assert resumed.metrics["steps"] == full.metrics["steps"]
    assert_same_weights(full.model, resumed.model)


def test_evaluate_rows(trained, demo_fm):
    name, result, _ = trained
    test = demo_fm.subset(range(0, 2000, 10))
    report = evaluate(result.model, test, ["inverted"], progress=False)
    assert report["test"]["bits_per_dim"] is None and 0 <= report["test"]["error"] <= 100
    row = report["ood"]["inverted"]
    assert row["auc_typicality"] is None and row["auc_nll"] is None and row["bits_per_dim"] is None
    table = markdown_table({name: report})
    if name == "vib":
        assert 0 <= row["auc_info_loss"] <= 100
        assert report["ood_average"]["auc_info_loss"] == row["auc_info_loss"]
        assert "Info-AUC inverted" in table
    else:
        assert "auc_info_loss" not in row and "Info-AUC" not in table


def test_zoo_packages_a_baseline(trained, tmp_path):
    name, result, _ = trained
    card = zoo.add(result.out, f"fashion-mnist/{name}", f"ibinn train --model {name}",
                   ood_sets=["inverted"], root=tmp_path)
    assert card.kind == name and card.label == name
    assert card.metrics["test"]["bits_per_dim"] is None
    assert type(zoo.load(card.name, device="cpu", root=tmp_path)) is BASELINES[name]


def test_train_config_checks_the_model(tmp_path):
    with pytest.raises(ValueError, match="unknown model"):
        _config(tmp_path, model="softmax")
    with pytest.raises(ValueError, match="IB-INN only"):
        _config(tmp_path, model="resnet", mode="class-nll")


def test_cli_trains_and_evaluates_a_baseline(tmp_path, capsys):
    out = tmp_path / "run"
    assert main(["train", "--model", "vib", "--dataset", "demo:fashion-mnist", "--preset", "tiny",
                 "--epochs", "0.2", "--batch-size", "64", "--device", "cpu", "--quiet",
                 "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "test error" in printed and "bits/dim" not in printed
    assert isinstance(ibinn.load(out, device="cpu"), VIBClassifier)
    assert main(["evaluate", str(out), "--limit", "200", "--ood", "inverted", "--device", "cpu"]) == 0
    assert "Info-AUC geo-mean" in capsys.readouterr().out

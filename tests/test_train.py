import json
import os
import shlex
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

import ibinn
from ibinn import cli, explore
from ibinn.checkpoint import RunFolderBusy, run_folder_lock
from ibinn.data import AUGMENTATIONS
from ibinn.device import Distributed
from ibinn.recipe import StepTimer, resized_schedule
from ibinn.train import (
    MAX_SNAPSHOTS,
    REPORT_EVERY,
    SCHEDULES,
    STATE_FILE,
    TrainConfig,
    TrainResult,
    _Run,
    budget_steps,
    load_snapshots,
    lr_schedule,
    snapshot_interval,
    train,
)
from ibinn.train_config import DEFAULT_LR, LEGACY_LR

from .conftest import assert_same_weights, torch_threads


def _config(tmp_path, **kw) -> TrainConfig:
    base = dict(dataset="demo:fashion-mnist", preset="tiny", epochs=1, batch_size=64, val_size=200,
                checkpoint_every=5, device="cpu", out=str(tmp_path / "run"))
    return TrainConfig(**(base | kw))


def test_loss_falls_and_model_is_saved(tmp_path, capfd):
    seen = []
    result = train(_config(tmp_path, epochs=2), callback=seen.append, progress=False)
    out, err = capfd.readouterr()
    assert (out, err) == ("", ""), "progress=False prints nothing (the dashboard's workers use it)"
    losses = [r["loss"] for r in seen if "loss" in r and "val_error" not in r]
    assert losses[-1] < losses[0] - 0.5
    assert result.metrics["steps"] == 2 * (1350 // 64)  # the demo's 1,500 training images less 150
    assert result.history[-1]["val_error"] < 0.6  # far better than chance (0.9) after 42 steps
    loaded = ibinn.load(tmp_path / "run")
    assert loaded.config.dataset == "demo:fashion-mnist"
    assert json.loads((tmp_path / "run" / "metrics.json").read_text())["test_error"] < 0.6


def test_interrupted_run_resumes_exactly(tmp_path):
    full = train(_config(tmp_path / "a"), progress=False)
    calls = {"n": 0}

    def stop_after_12() -> bool:
        calls["n"] += 1
        return calls["n"] >= 12

    cfg = _config(tmp_path / "b")
    partial = train(cfg, should_stop=stop_after_12, progress=False)
    assert not partial.finished
    with pytest.raises(FileExistsError, match="--resume"):
        train(cfg, progress=False)
    leftover = Path(cfg.out) / f".{STATE_FILE}.x1y2z3.tmp"  # as a kill mid-write leaves it
    leftover.write_bytes(b"half a checkpoint")
    resumed = train(cfg, resume=True, progress=False)
    assert resumed.metrics["steps"] == full.metrics["steps"]
    assert_same_weights(full.model, resumed.model)
    assert not leftover.exists()


def test_nan_guard_stops_with_clear_message(tmp_path, monkeypatch):
    monkeypatch.setattr(ibinn.IBINN, "loss", lambda self, z, log_det, y: z.sum() * float("nan"))
    # checked where the running figures are fetched (every REPORT_EVERY steps), not every step
    with pytest.raises(ibinn.TrainingDiverged, match=f"NaN/inf for {REPORT_EVERY} steps in a row"):
        train(_config(tmp_path, max_bad_steps=4), progress=False)
    state = torch.load(tmp_path / "run" / STATE_FILE, weights_only=True)
    assert state["step"] == REPORT_EVERY
    fresh = _Run.start(_config(tmp_path / "fresh"), torch.device("cpu"), Distributed(), resume=False)
    for name, value in fresh.model.state_dict().items():  # the saved weights are the initial ones
        assert torch.equal(state["model"][name], value), name


@pytest.mark.parametrize("optimizer", ["adam", "sgd"])
def test_a_non_finite_step_changes_nothing_but_the_step_count(tmp_path, monkeypatch, optimizer):
    """The NaN guard decides on the device: the fused optimiser skips the update, moments included."""
    run = _Run.start(_config(tmp_path, optimizer=optimizer), torch.device("cpu"), Distributed(),
                     resume=False)
    before = {k: v.clone() for k, v in run.model.state_dict().items()}
    with monkeypatch.context() as m:
        m.setattr(ibinn.IBINN, "loss", lambda self, z, log_det, y: z.sum() * float("inf"))
        run.train_step()
        run.train_step()
    assert run.step == 2
    for name, value in run.model.state_dict().items():
        assert torch.equal(value, before[name]), name
    assert all(float(s.get("step", 0)) == 0 for s in run.optimizer.state.values())
    assert all(not s.get("momentum_buffer", torch.zeros(1)).any() for s in run.optimizer.state.values())
    assert run.report() == {}  # no finite step yet: no figures
    assert run._sums[-2] == 2  # two bad steps in a row, counted on the device
    run.train_step()  # a good step moves the weights, from clean optimiser state
    moved = [k for k, v in run.model.state_dict().items() if not torch.equal(v, before[k])]
    assert moved
    assert all(torch.isfinite(v).all() for v in run.model.state_dict().values())
    assert run._sums[-2] == 0 and run._sums[-1] == 2


def test_bad_settings_are_rejected(tmp_path):
    with pytest.raises(ValueError, match="unknown mode"):
        _config(tmp_path, mode="softmax")
    with pytest.raises(ValueError, match="gamma"):
        _config(tmp_path, gamma=-1.0)
    with pytest.raises(ibinn.DataError, match="unknown data set"):
        train(_config(tmp_path, dataset="imagenet"), progress=False)
    with pytest.raises(ValueError, match="unknown augmentation 'mixup'"):
        _config(tmp_path, augment="mixup")
    with pytest.raises(ValueError, match="not depth"):
        _config(tmp_path, model_overrides={"depth": 3})
    for field, value in (("epochs", float("nan")), ("batch_size", 0), ("seed", 2.5), ("lr", -1.0),
                         ("label_smoothing", 1.0), ("checkpoint_every", 0), ("epochs", "5")):
        with pytest.raises(ValueError, match=field):
            _config(tmp_path, **{field: value})


ODD_VALUES = (st.none() | st.booleans() | st.integers(-3, 3) | st.floats() | st.text(max_size=12)
              | st.sampled_from(["tiny", "small", "paper", "demo:fashion-mnist", "cifar10", ""]))


@settings(max_examples=200, deadline=None)
@given(field=st.sampled_from(["dataset", "model", "preset", "mode", "device", "compile", "optimizer",
                              "epochs", "batch_size", "gamma", "lr", "sigma", "label_smoothing", "seed",
                              "snapshots"]),
       value=ODD_VALUES | st.dictionaries(st.text(max_size=3), st.integers(), max_size=2))
def test_a_config_field_is_refused_or_kept_as_given(field, value):
    """Any value of a field: a ValueError, or kept as given (names as names, numbers finite but γ)."""
    try:
        config = TrainConfig(**{field: value})
    except ValueError:
        return
    kept = getattr(config, field)
    if field == "lr" and value is None:  # no rate: the optimizer's default
        value = DEFAULT_LR["adam"]
    assert kept == value and type(kept) is not bool, (field, value, kept)
    if field in ("dataset", "model", "preset", "mode", "device", "compile", "optimizer"):
        assert isinstance(kept, str) and kept
    elif field != "gamma":
        assert kept is None or np.isfinite(kept), (field, kept)


def test_a_config_holds_its_learning_rate_and_old_saved_configs_keep_theirs(tmp_path):
    """The default rate is filled in (so a saved config keeps it when the default changes); an
    ``lr: null`` saved while None meant "the default" loads as the rate it trained with."""
    assert _config(tmp_path).lr == DEFAULT_LR["adam"] != LEGACY_LR["adam"]
    assert _config(tmp_path, optimizer="sgd").lr == DEFAULT_LR["sgd"]
    assert TrainConfig.from_json(_config(tmp_path).to_json()).lr == DEFAULT_LR["adam"]
    for optimizer in ("adam", "sgd"):
        saved = _config(tmp_path, optimizer=optimizer).to_json() | {"lr": None}
        assert TrainConfig.from_json(saved).lr == LEGACY_LR[optimizer]
        # the zoo's rebuild recipe: this version's optimizer at its own default rate
        assert TrainConfig.from_json(saved).with_recipe(budget_minutes=5).lr == DEFAULT_LR["adam"]
    assert TrainConfig(optimizer="sgd").with_recipe(optimizer="sgd").lr == DEFAULT_LR["sgd"]
    for damaged in ("rmsprop", ["adam"]):  # a damaged saved optimizer: the constructor's error
        with pytest.raises(ValueError, match="optimizer"):
            TrainConfig.from_json(_config(tmp_path).to_json() | {"optimizer": damaged, "lr": None})
    assert "--lr" not in TrainConfig(optimizer="sgd").command()
    assert "--lr 0.001" in TrainConfig(lr=1e-3).command()


@settings(max_examples=60, deadline=None)
@given(optimizer=st.sampled_from(["adam", "sgd"]), schedule=st.sampled_from(SCHEDULES),
       amp=st.booleans(), learn=st.booleans(), gamma=st.sampled_from([0.0, 0.1, 1.0, float("inf")]),
       augment=st.sampled_from([None, *AUGMENTATIONS]),
       budget=st.sampled_from([None, 0.5, 45.0]), sigma=st.sampled_from([0.0, 1e-3, 0.01, 0.0125]),
       lr=st.sampled_from([None, 1e-3, 0.07]), ema=st.sampled_from([0.0, 0.05, 0.2]),
       overrides=st.sampled_from([{}, {"fc_width": 128}, {"widths": [8, 16]}]))
def test_a_configs_command_makes_that_config(optimizer, schedule, amp, learn, gamma, augment, budget,
                                            sigma, lr, ema, overrides):
    """``command()`` is how a card says what made it: parsed by ``ibinn train``, it must give the
    same config back, boolean flags off their default included (``--no-amp``)."""
    config = TrainConfig(optimizer=optimizer, schedule=schedule, amp=amp, learn_class_weights=learn,
                         gamma=gamma, augment=augment, budget_minutes=budget, sigma=sigma, lr=lr,
                         ema=ema, model_overrides=overrides, out="runs/x")
    argv = shlex.split(config.command())
    assert argv[:2] == ["ibinn", "train"]
    assert cli._train_config(cli._parser().parse_args(argv[1:])) == config


def test_configs_saved_with_boolean_augment_still_load(tmp_path):
    saved = _config(tmp_path).to_json() | {"augment": True}
    assert TrainConfig.from_json(saved).augment == "flip-crop"
    assert TrainConfig.from_json(saved | {"augment": False}).augment == "none"


def _rates(schedule: str, total: int, warmup: float) -> list[float]:
    """The learning rate of each of ``total`` steps under ``schedule``, and the one after the last."""
    param = torch.zeros(1, requires_grad=True)
    opt = torch.optim.SGD([param], lr=0.5)
    sched = lr_schedule(opt, schedule, total, warmup)
    rates = [opt.param_groups[0]["lr"]]
    for _ in range(total):
        opt.step()
        sched.step()
        rates.append(opt.param_groups[0]["lr"])
    return rates


@settings(max_examples=60, deadline=None)
@given(total=st.integers(1, 3000), warmup=st.floats(0, 0.5), schedule=st.sampled_from(["linear", "cosine"]))
def test_budget_schedules_warm_up_then_reach_zero_with_the_last_step(total, warmup, schedule):
    rates = _rates(schedule, total, warmup)
    assert rates[-1] == pytest.approx(0, abs=1e-12), "no rate is left at the end"
    assert all(r > 0 for r in rates[:-1]), "every step learns"
    assert max(rates) == pytest.approx(0.5)
    warm = min(round(warmup * total), total - 1)  # the warm-up's steps: full rate at its last one
    peak = next(i for i, r in enumerate(rates) if r >= 0.5 * (1 - 1e-9))
    assert peak == max(0, warm - 1)
    assert all(a < b for a, b in zip(rates[:peak], rates[1:peak + 1], strict=True)), "rises"
    assert all(a >= b - 1e-12 for a, b in zip(rates[peak:], rates[peak + 1:], strict=False)), "decays"


def test_every_schedule_is_a_torch_scheduler_that_resumes_from_its_state():
    for schedule in SCHEDULES:
        full = _rates(schedule, 50, 0.1)
        param = torch.zeros(1, requires_grad=True)
        opt = torch.optim.SGD([param], lr=0.5)
        first = lr_schedule(opt, schedule, 50, 0.1)
        for _ in range(20):
            opt.step()
            first.step()
        state = first.state_dict()
        opt2 = torch.optim.SGD([param], lr=0.5)
        second = lr_schedule(opt2, schedule, 50, 0.1)  # built, then loaded as a run resumes:
        second.load_state_dict(state)
        opt2.load_state_dict(opt.state_dict())  # the optimiser last (building sets its rates)
        rest = [opt2.param_groups[0]["lr"]]
        for _ in range(30):
            opt2.step()
            second.step()
            rest.append(opt2.param_groups[0]["lr"])
        assert rest == pytest.approx(full[20:], rel=1e-9), schedule
    assert _rates("step", 90, 0.0)[29:31] == pytest.approx([0.5, 0.05])  # the paper's first decay


@settings(max_examples=200, deadline=None)
@given(budget=st.floats(1, 1e5), step=st.floats(1e-3, 10), batch=st.integers(1, 512),
       per_epoch=st.integers(1, 1000), val=st.integers(0, 10_000), test=st.integers(0, 10_000))
def test_budget_steps_are_the_most_that_fit_the_budget(budget, step, batch, per_epoch, val, test):
    """Steps plus the evaluation passes they imply fit the budget; one more step would not."""
    n = budget_steps(budget, step, batch, per_epoch, val, test)

    def cost(steps: int) -> float:
        infer = step / batch / 3
        return steps * step + steps / per_epoch * val * infer + test * infer
    assert n >= 1
    if n > 1:
        assert cost(n) <= budget * (1 + 1e-9)
    assert cost(n + 1) > budget * (1 - 1e-9)


def test_a_budget_run_takes_the_steps_that_fit_and_ends_at_zero_rate(tmp_path, monkeypatch):
    """The run length comes from the measured step speed (here fixed: 0.05 s a step, 1 s spent
    measuring), is re-planned once from the run's own first steps (here: twice as slow, as when a
    neighbouring process starts), the schedule ends at zero with the budget, and a resume keeps
    the re-planned length, also when the run was stopped before it re-planned."""
    monkeypatch.setattr(_Run, "measure_step_seconds", lambda self: (0.05, 1.0))
    monkeypatch.setattr(StepTimer, "step_seconds", property(lambda self: 0.1))
    cfg = _config(tmp_path, budget_minutes=0.05, epochs=100)  # 3 s: epochs are ignored
    run = _Run.start(cfg, torch.device("cpu"), Distributed(), resume=False)
    planned = budget_steps(2.0, 0.05, 64, 1350 // 64, 150, 500)  # the demo: 150 validation images
    replanned = budget_steps(2.0, 0.1, 64, 1350 // 64, 150, 500)
    assert run.total_steps == planned < 100 * (1350 // 64)  # the measurement's 1 s is spent too
    assert run.timer == StepTimer(first=planned // 8, last=planned // 4) and planned // 8 > 2

    def stop_after(n: int) -> Callable[[], bool]:
        calls = {"n": 0}

        def stop() -> bool:
            calls["n"] += 1
            return calls["n"] >= n
        return stop
    assert not train(cfg, should_stop=stop_after(2), progress=False).finished  # before re-planning
    state = torch.load(tmp_path / "run" / STATE_FILE, weights_only=True)
    assert (state["step"], state["total_steps"], state["replan_pending"]) == (2, planned, True)
    monkeypatch.setattr(_Run, "measure_step_seconds", lambda self: pytest.fail("measured again"))
    stopped = train(cfg, resume=True, should_stop=stop_after(planned // 4), progress=False)
    assert stopped.metrics["total_steps"] == replanned
    state = torch.load(tmp_path / "run" / STATE_FILE, weights_only=True)
    assert (state["total_steps"], state["replan_pending"]) == (replanned, False)
    monkeypatch.setattr(StepTimer, "step_seconds", property(lambda self: pytest.fail("re-planned again")))
    result = train(cfg, resume=True, progress=False)
    assert result.metrics["steps"] == replanned
    state = torch.load(tmp_path / "run" / STATE_FILE, weights_only=True)
    assert state["total_steps"] == replanned
    assert state["scheduler"]["_last_lr"][0] == 0.0


@settings(max_examples=40, deadline=None)
@given(first=st.integers(4, 400), total=st.integers(4, 400), done=st.integers(0, 400),
       warmup=st.floats(0, 0.5), schedule=st.sampled_from(SCHEDULES),
       optimizer=st.sampled_from(["adam", "sgd"]))
def test_a_resized_schedule_is_the_schedule_of_a_run_planned_at_that_length(
        first, total, done, warmup, schedule, optimizer):
    """Re-planned after ``done`` steps of a run of ``first``, the rates (and one-cycle's momenta)
    of every group are those of a run of ``total`` steps from the start, to its end."""
    done = min(done, total - 1, first)

    def optimizer_with_two_groups() -> torch.optim.Optimizer:
        groups = [{"params": [torch.zeros(2, requires_grad=True)]},
                  {"params": [torch.zeros(1, requires_grad=True)], "lr": 0.3}]
        if optimizer == "adam":
            return torch.optim.Adam(groups, lr=0.1)
        return torch.optim.SGD(groups, lr=0.1, momentum=0.9)

    def settings_of(opt: torch.optim.Optimizer) -> list[tuple]:
        return [(g["lr"], g.get("momentum"), g.get("betas")) for g in opt.param_groups]
    resized, fresh = optimizer_with_two_groups(), optimizer_with_two_groups()
    base = [group["lr"] for group in resized.param_groups]
    resized_schedule_, fresh_schedule = lr_schedule(resized, schedule, first, warmup), None
    for _ in range(done):
        resized.step()
        resized_schedule_.step()
    resized_schedule_ = resized_schedule(resized, schedule, total, warmup, base, done)
    fresh_schedule = lr_schedule(fresh, schedule, total, warmup)
    for _ in range(done):
        fresh.step()
        fresh_schedule.step()
    for _ in range(total - done):
        assert settings_of(resized) == pytest.approx(settings_of(fresh), rel=1e-12, abs=1e-15)
        for opt, sched in ((resized, resized_schedule_), (fresh, fresh_schedule)):
            opt.step()
            sched.step()
    assert settings_of(resized) == pytest.approx(settings_of(fresh), rel=1e-12, abs=1e-15)


def test_the_step_measurement_leaves_the_run_unchanged(tmp_path):
    """Measuring the step speed trains on the run's own model and optimiser and restores them."""
    run = _Run.start(_config(tmp_path / "a", optimizer="sgd"), torch.device("cpu"), Distributed(),
                     resume=False)
    before = {k: v.clone() for k, v in run.model.state_dict().items()}
    rng = torch.get_rng_state()
    seconds, spent = run.measure_step_seconds(warm=1, timed=2)
    assert 0 < seconds <= spent
    assert torch.equal(torch.get_rng_state(), rng)
    for name, value in run.model.state_dict().items():
        assert torch.equal(value, before[name]), name
    assert all(not s["momentum_buffer"].any() for s in run.optimizer.state.values())


def test_the_saved_and_evaluated_weights_are_the_average(tmp_path):
    result = train(_config(tmp_path, ema=0.2), progress=False)
    state = torch.load(tmp_path / "run" / STATE_FILE, weights_only=True)
    live = state["model"]
    saved = ibinn.load(tmp_path / "run")
    trainable = [name for name, p in saved.named_parameters() if p.requires_grad]
    assert_same_weights(saved, result.model)
    differs = [n for n in trainable if not torch.allclose(saved.state_dict()[n], live[n])]
    assert len(differs) > len(trainable) // 2, "the saved weights are the average, not the last step's"
    for i, name in enumerate(trainable):
        assert torch.equal(saved.state_dict()[name], state["average"][f"module.{i}"]), name
    # without the average the saved weights are the last step's
    plain = train(_config(tmp_path / "plain", ema=0.0), progress=False)
    assert "average" not in torch.load(tmp_path / "plain" / "run" / STATE_FILE, weights_only=True)
    assert_same_weights(ibinn.load(tmp_path / "plain" / "run"), plain.model)


def test_a_bf16_cpu_trains_channels_last_and_saves_what_nchw_loads(tmp_path, monkeypatch):
    """On a CPU with native bf16 the model and its batches are channels-last (oneDNN's fastest
    bf16 layout); the layout changes neither the first loss nor the weights that load back."""
    from ibinn import objective as O
    from ibinn import train as T

    for module in (T, O):  # the layout (train) and the autocast (objective) both ask
        monkeypatch.setattr(module, "fast_bf16", lambda device: True)
    cpu = torch.device("cpu")
    rgb = dict(dataset="demo:cifar10", val_size=100)  # grey batches look the same in both layouts
    run = _Run.start(_config(tmp_path / "bf16", **rgb), cpu, Distributed(), resume=False)
    convs = [p for p in run.model.parameters() if p.dim() == 4]
    assert run.layout == torch.channels_last and convs
    assert all(p.is_contiguous(memory_format=torch.channels_last) for p in convs)
    assert not all(p.is_contiguous() for p in convs), "a 4-D weight in the NCHW layout"
    x, _ = run.batch()
    assert x.is_contiguous(memory_format=torch.channels_last) and not x.is_contiguous()
    assert _Run.start(_config(tmp_path / "fp32", amp=False, **rgb), cpu, Distributed(),
                      resume=False).layout == torch.contiguous_format

    def first_loss(out: str, layout: torch.memory_format) -> tuple[float, TrainResult]:
        monkeypatch.setattr(T, "memory_format", lambda device, bf16=False: layout)
        seen = []
        result = train(_config(tmp_path / out, epochs=0.1, **rgb), callback=seen.append, progress=False)
        return next(r["loss"] for r in seen if "loss" in r), result
    last, result = first_loss("last", torch.channels_last)
    nchw, _ = first_loss("nchw", torch.contiguous_format)
    assert last == pytest.approx(nchw, rel=0.02, abs=0.02)  # bf16 kernels differ by layout
    assert_same_weights(ibinn.load(tmp_path / "last" / "run"), result.model)


@pytest.mark.slow
def test_kill_9_mid_budget_run_then_resume_continues_its_schedule_and_average(tmp_path, monkeypatch):
    """A budget run killed with SIGKILL resumes to its planned length, and ends with the weights
    (the average) an unbroken run of the same plan makes (the same measurement and re-planning,
    as the run saved them): the plan, the schedule and the average all continue as if nothing
    had happened."""
    out = tmp_path / "run"
    cmd = [sys.executable, "-m", "ibinn.cli", "train", "--dataset", "demo:fashion-mnist",
           "--preset", "tiny", "--budget-minutes", "0.4", "--batch-size", "64", "--checkpoint-every",
           "3", "--val-size", "200", "--device", "cpu", "--quiet", "--out", str(out)]
    env = os.environ | {"OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)
    deadline = time.time() + 120
    while not (out / STATE_FILE).exists() and time.time() < deadline:
        time.sleep(0.2)
    time.sleep(0.5)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    killed = torch.load(out / STATE_FILE, weights_only=True)
    assert 0 < killed["step"] < killed["total_steps"], "kill came too late to test anything"
    done = subprocess.run([*cmd, "--resume"], capture_output=True, text=True, timeout=300, env=env)
    assert done.returncode == 0, done.stderr
    final = torch.load(out / STATE_FILE, weights_only=True)
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["steps"] == final["total_steps"] and metrics["resumed_from_step"] == killed["step"]
    assert final["scheduler"]["_last_lr"][0] == 0.0
    plan = final["planned"]
    monkeypatch.setattr(_Run, "measure_step_seconds",
                        lambda self: (plan["step_seconds"], plan["measure_seconds"]))
    if "replanned_step_seconds" in plan:
        monkeypatch.setattr(StepTimer, "step_seconds", property(lambda self: plan["replanned_step_seconds"]))
    else:  # killed too close to the re-planning step for the resumed run to time any steps
        monkeypatch.setattr(StepTimer, "of_run", lambda total_steps, resumed_at=0: None)
    with torch_threads(1):
        unbroken = train(TrainConfig(dataset="demo:fashion-mnist", preset="tiny", batch_size=64,
                                     val_size=200, checkpoint_every=3, device="cpu",
                                     budget_minutes=0.4, out=str(tmp_path / "unbroken")),
                         progress=False)
    assert unbroken.metrics["steps"] == final["total_steps"]
    assert_same_weights(ibinn.load(out), unbroken.model)
    assert not list(out.glob(".*.tmp"))


@pytest.mark.slow
def test_kill_9_then_resume_loses_nothing(tmp_path):
    """A real process killed with SIGKILL mid-run resumes to the same step count."""
    out = tmp_path / "run"
    cmd = [sys.executable, "-m", "ibinn.cli", "train", "--dataset", "demo:fashion-mnist",
           "--preset", "tiny", "--epochs", "30", "--batch-size", "64", "--checkpoint-every", "3",
           "--device", "cpu", "--quiet", "--out", str(out)]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 120
    while not (out / STATE_FILE).exists() and time.time() < deadline:
        time.sleep(0.2)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    step_at_kill = torch.load(out / STATE_FILE, weights_only=True)["step"]
    total = 30 * (1350 // 64)  # 30 epochs of the demo training split less its validation images
    assert 0 < step_at_kill < total, "kill came too late to test anything"
    done = subprocess.run([*cmd, "--resume"], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["steps"] == total
    # the resumed process continued where the killed one stopped: it ran fewer than all steps
    assert metrics["resumed_from_step"] == step_at_kill > 0
    assert not list(out.glob(".*.tmp"))


def test_a_second_run_into_a_busy_folder_refuses(tmp_path):
    """While a run holds its folder, another run into it (CLI or library) refuses and writes nothing."""
    out = tmp_path / "run"
    with run_folder_lock(out):
        with pytest.raises(RunFolderBusy, match=f"pid.*{os.getpid()}"):
            train(TrainConfig(dataset="demo:fashion-mnist", preset="tiny", epochs=0.1, device="cpu",
                              out=str(out)), progress=False)
        cmd = [sys.executable, "-m", "ibinn.cli", "train", "--dataset", "demo:fashion-mnist",
               "--preset", "tiny", "--epochs", "0.1", "--device", "cpu", "--quiet", "--out", str(out)]
        busy = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
        assert busy.returncode == 2 and "in use by a run that is still going" in busy.stderr
        assert sorted(p.name for p in out.iterdir()) == [".ibinn.lock"]
    # released: the folder is usable again
    result = train(TrainConfig(dataset="demo:fashion-mnist", preset="tiny", epochs=0.1, device="cpu",
                               out=str(out)), progress=False)
    assert result.finished and (out / "model.safetensors").exists()


@pytest.mark.slow
def test_two_gloo_processes_train_what_one_process_trains(tmp_path):
    """torchrun with 2 CPU processes (gloo, DDP), stopped once and resumed, ends where a single
    process with the same global batch ends. Tolerance: the gradient of the global batch is the mean
    of two half-batch means, summed in another order, so fp32 rounding differs; after 42 Adam steps
    the weights agree to 2e-3 (measured: about 2e-4 after 14 steps), and the test error exactly.
    In fp32: bf16's rounding (8 bits of mantissa) would swamp the difference the test bounds."""
    args = ["train", "--dataset", "demo:fashion-mnist", "--preset", "tiny", "--epochs", "1",
            "--batch-size", "32", "--device", "cpu", "--compile", "off", "--no-amp", "--quiet"]
    one = subprocess.run([sys.executable, "-m", "ibinn", *args, "--out", str(tmp_path / "one")],
                         capture_output=True, text=True, timeout=600)
    assert one.returncode == 0, one.stderr
    torchrun = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
                "-m", "ibinn", *args, "--out", str(tmp_path / "two"), "--resume"]
    env = os.environ | {"OMP_NUM_THREADS": "1"}
    stopped = subprocess.run([*torchrun, "--max-minutes", "0"], capture_output=True, text=True,
                             timeout=600, env=env)
    assert stopped.returncode != 0 and "stopped after" in stopped.stdout, stopped.stdout + stopped.stderr
    assert torch.load(tmp_path / "two" / STATE_FILE, weights_only=True)["step"] == REPORT_EVERY
    done = subprocess.run(torchrun, capture_output=True, text=True, timeout=600, env=env)
    assert done.returncode == 0, done.stderr
    metrics = [json.loads((tmp_path / run / "metrics.json").read_text()) for run in ("one", "two")]
    assert metrics[1]["processes"] == 2 and metrics[1]["resumed_from_step"] == REPORT_EVERY
    assert metrics[0]["steps"] == metrics[1]["steps"] == 1350 // 32  # demo training part less 150
    assert metrics[0]["test_error"] == pytest.approx(metrics[1]["test_error"], abs=2e-3)
    a, b = (ibinn.load(tmp_path / run, device="cpu").state_dict() for run in ("one", "two"))
    worst = max(float((a[k].float() - b[k].float()).abs().max()) for k in a)
    assert worst < 2e-3


def test_compile_auto_compiles_only_runs_long_enough_to_repay_it(tmp_path, monkeypatch):
    from ibinn import objective as O

    cpu = torch.device("cpu")
    assert O.estimate_minutes(_config(tmp_path)) < 1
    assert not O.compile_pays(_config(tmp_path), cpu)  # seconds of training: eager
    assert not O.compile_pays(_config(tmp_path, compile="off", epochs=10**5), cpu)
    monkeypatch.setattr(O, "estimate_minutes", lambda config: 60.0)
    assert O.compile_pays(_config(tmp_path), cpu) == (O.compile_blocker(cpu) is None)
    monkeypatch.setattr(O, "compile_blocker", lambda device: "no C++ compiler found")
    assert not O.compile_pays(_config(tmp_path), cpu)


def test_without_a_compiler_compile_on_trains_eagerly_with_one_line(tmp_path, monkeypatch, capsys):
    import ibinn.device

    monkeypatch.setattr(ibinn.device.shutil, "which", lambda name: None)
    result = train(_config(tmp_path, compile="on", epochs=0.2), progress=False)
    assert result.finished
    err = capsys.readouterr().err
    assert err.count("compile: no C++ compiler found") == 1 and "running eagerly" in err


def test_a_compilation_failure_falls_back_to_eager_and_loses_no_step(tmp_path, monkeypatch, capsys):
    from ibinn import objective as O

    def broken_backend(graph, inputs):
        raise RuntimeError("the C++ compiler crashed")

    monkeypatch.setattr(O, "compiled", lambda module, device, mode=None:
                        torch.compile(module, backend=broken_backend))
    broken = train(_config(tmp_path / "a", compile="on", epochs=0.2), progress=False)
    assert "compile: failed" in capsys.readouterr().err
    eager = train(_config(tmp_path / "b", compile="off", epochs=0.2), progress=False)
    assert broken.metrics["steps"] == eager.metrics["steps"]
    assert_same_weights(broken.model, eager.model)  # the failed first step left no trace


@pytest.mark.slow
def test_compiled_inference_gives_the_eager_results():
    model = ibinn.load("fashion-mnist/gamma-1", device="cpu")
    images = ibinn.load_dataset("demo:fashion-mnist").images[:100]
    eager = model.infer(images, batch_size=64)
    model.compile_inference()
    compiled = model.infer(images, batch_size=64)  # batches of 64 and 36: one dynamic graph
    assert torch.allclose(eager.log_posterior, compiled.log_posterior, atol=1e-4)
    assert torch.allclose(eager.bits_per_dim, compiled.bits_per_dim, atol=1e-4)


# --------------------------------------------------------------------------- latent snapshots

def test_snapshot_interval_spaces_frames_evenly_and_on_epoch_ends_when_apart():
    assert snapshot_interval(10, 21, 40) == 1  # a short run: every step
    assert snapshot_interval(21, 21, 8) == 3  # within an epoch: every few steps
    assert snapshot_interval(840, 21, 40) == 21  # 40 epochs, 40 frames: every epoch end
    assert snapshot_interval(10_500, 21, 40) == 21 * 13  # 500 epochs: every 13th epoch end
    with pytest.raises(ValueError, match="snapshots"):
        TrainConfig(snapshots=MAX_SNAPSHOTS + 1)


def test_snapshots_leave_the_run_unchanged_and_survive_a_resume(tmp_path):
    """Frames at the start, every few steps and the end; the same weights as a run without
    snapshots (eval mode, RNG untouched); an interrupted run resumed keeps the same frames."""
    plain = train(_config(tmp_path / "plain", epochs=0.5), progress=False)
    watched = train(_config(tmp_path / "watched", epochs=0.5, snapshots=4), progress=False)
    assert_same_weights(plain.model, watched.model)
    frames = load_snapshots(watched.out)
    steps = watched.metrics["steps"]  # 10: frames every 3 steps and at the end
    assert frames["step"].tolist() == [0, 3, 6, 9, steps]
    assert frames["xy"].shape == (5, 300, 2) and frames["mu_xy"].shape == (5, 10, 2)
    assert np.bincount(frames["labels"]).tolist() == [30] * 10  # held-out test images, balanced
    assert frames["classes"][0] == "T-shirt/top"
    assert frames["accuracy"][-1] > frames["accuracy"][0] + 0.2  # it learns as it is watched
    assert np.allclose(frames["mu_xy"].mean(1), 0, atol=1e-4)  # the means' own PCA: centred on them

    calls = {"n": 0}

    def stop_after_7() -> bool:
        calls["n"] += 1
        return calls["n"] >= 7

    cfg = _config(tmp_path / "resumed", epochs=0.5, snapshots=4)
    assert not train(cfg, should_stop=stop_after_7, progress=False).finished
    assert load_snapshots(cfg.out)["step"].tolist() == [0, 3, 6]
    resumed = train(cfg, resume=True, progress=False)
    again = load_snapshots(resumed.out)
    assert again["step"].tolist() == frames["step"].tolist()
    assert np.allclose(again["xy"], frames["xy"], atol=1e-4)
    assert not load_snapshots(tmp_path / "plain")  # off by default


def test_a_snapshot_projects_on_the_means_plane_and_leaves_mode_and_rng_alone(tmp_path):
    run = _Run.start(_config(tmp_path, snapshots=2), torch.device("cpu"), Distributed(), False)
    run.model.train()
    rng = torch.get_rng_state()
    run.snapshot()
    assert run.model.training and torch.equal(torch.get_rng_state(), rng)
    frames = load_snapshots(run.out)
    # independently: centre the class means, their two principal directions, project onto them
    mu = run.model.mu.detach().double().numpy()
    axes = np.linalg.svd(mu - mu.mean(0))[2][:2]
    z = run.model.infer(run.snapshot_data.images).z.double().numpy()
    expected = (z - mu.mean(0)) @ axes.T
    assert np.allclose(np.abs(frames["xy"][0]), np.abs(expected), atol=1e-3)  # signs are free
    predicted = run.model.infer(run.snapshot_data.images).log_posterior.argmax(1)
    assert np.isclose(frames["accuracy"][0], (predicted == run.snapshot_data.labels).float().mean())


def test_align_frames_undoes_rotations_and_reflections_but_not_growth():
    rng = np.random.default_rng(0)
    last_xy, last_mu = rng.normal(size=(50, 2)), rng.normal(size=(10, 2))
    turn = np.array([[np.cos(1.0), -np.sin(1.0)], [np.sin(1.0), np.cos(1.0)]])
    flip = np.diag([1.0, -1.0])
    xy = np.stack([0.5 * last_xy @ turn, last_xy @ flip, last_xy])
    mu = np.stack([0.5 * last_mu @ turn, last_mu @ flip, last_mu])
    xy[1, 3] = np.nan  # a point not drawn in one frame is ignored by the fit
    aligned_xy, aligned_mu = explore.align_frames(xy, mu)
    assert np.allclose(aligned_xy[2], last_xy) and np.allclose(aligned_mu[1], last_mu)
    assert np.allclose(aligned_xy[0], 0.5 * last_xy)  # the early, smaller space stays smaller
    assert np.isnan(aligned_xy[1, 3]).all() and np.allclose(np.delete(aligned_xy[1], 3, 0),
                                                             np.delete(last_xy, 3, 0))
    with pytest.raises(ValueError, match="frames must be"):
        explore.align_frames(xy[..., :1], mu)

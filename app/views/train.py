"""Train: start a training run in the background and watch it live."""

from __future__ import annotations

import dataclasses
import math
import time

import figures
import registry
import sandbox
import session
import snapshots
import streamlit as st
import widgets

from ibinn import DataError
from ibinn.jobs import FIRST_RUN, JobManager, JobRefused
from ibinn.limits import current as current_limits
from ibinn.train import TrainConfig


@st.cache_resource
def job_manager() -> JobManager:
    """One job manager per server: its jobs outlive pages and reruns; each runs in its own process."""
    return JobManager(registry.APP_RUNS)


st.title("Train a model")
LIMITS = current_limits()
widgets.explain(f"""
Train your own IB-INN. The run happens in the background on this server, in a process of its own
(one at a time; more are queued), so you can switch pages while it trains; the curves update every
second. You see and can cancel only the runs started in this browser session. **Cancel** stops a
run after the current step and keeps a checkpoint. A finished model is written to
`runs/app/<name>/` and appears in the sidebar's model list for everyone on this server.

This server allows {LIMITS.max_queued_per_session} queued or running jobs per session,
{LIMITS.max_queued_total} in all, and about {LIMITS.max_job_minutes:g} minutes of compute per job,
estimated before it starts.

Try two runs that differ only in **γ**: small γ (0.1) gives lower bits/dim but a higher error,
large γ (10) the opposite. On a laptop CPU, the `tiny` preset on the demo data takes about a second
an epoch, `small` on full Fashion-MNIST a few minutes per epoch.

The `demo:` sets hold 2,000 test images each, 200 per class: a run trains on the first 150 of each
class (less a validation tenth) and is tested on the other 50, images it never saw. While an
IB-INN trains, the page shows its **latent space forming**: 300 held-out images and the class
means μ_y, projected onto the plane of the means' first two principal components (the paper's
Fig. 7 view), one frame every few steps from the untrained model on. Each frame has its own plane
(the means move while training); frames are rotated onto each other, never stretched, so the
animation shows only how the space itself moves.
""")
st.info(f"**The defaults are a first run worth watching**: the `{FIRST_RUN.preset}` preset on "
        f"`{FIRST_RUN.dataset}` for {FIRST_RUN.epochs:g} epochs takes about **1 minute** on this "
        f"server's 2 CPU cores when nothing else runs, and ends near **74 % accuracy** on the "
        f"held-out demo images (chance: 10 %), with curves of about 120 points and "
        f"about {FIRST_RUN.snapshots} frames of the latent space (measured by "
        f"`benchmarks/first_run.py`).")

DATASETS = ["demo:fashion-mnist", "demo:cifar10", "fashion-mnist", "mnist", "cifar10", "cifar100",
            "svhn", "imagefolder:<dir>"]
MODES = {"ib": "IB loss with γ", "lx-only": "γ = 0 (L_X only)", "ly-only": "γ = ∞ (L_Y only)",
         "class-nll": "class-NLL (standard generative classifier)",
         "class-nll-reg": "class-NLL with fixed means on a hypersphere"}
MODELS = {"ibinn": "IB-INN (generative)", "resnet": "ResNet (discriminative)",
          "irevnet": "i-RevNet (invertible, discriminative)", "vib": "VIB (variational IB)"}

EPOCHS = (0.1, 500.0)


def parse_gamma(text: str) -> float:
    """γ as typed: a finite number ≥ 0, or ``inf`` / ``∞`` spelled out (``1e999`` or ``nan`` is
    refused, not read as ∞ or as nothing)."""
    text = text.strip().lower()
    if text in ("inf", "∞", "infinity"):
        return math.inf
    try:
        gamma = float(text)
    except ValueError:
        raise ValueError(f"γ must be a number ≥ 0 or inf, not {text[:40]!r}") from None
    if not (math.isfinite(gamma) and gamma >= 0):
        raise ValueError(f"γ must be a finite number ≥ 0, or inf written out; not {text[:40]!r}")
    return gamma


manager = job_manager()
owner = session.session_id()
with st.form("train_form"):
    c1, c2, c3 = st.columns(3)
    dataset = c1.selectbox("Data set", DATASETS, key="train_dataset",
                           help="demo: sets are shipped (2,000 images: for trying it out); the others "
                                "need the data under $IBINN_DATA")
    folder = c1.text_input("Folder (for imagefolder:<dir>)", key="train_folder",
                           help="a folder of class sub-folders, optionally split into train/ and test/")
    mode = c2.selectbox("Loss", list(MODES), format_func=MODES.get, key="train_mode")
    gamma_text = c2.text_input("γ (for the IB loss; 'inf' allowed)", "1", key="train_gamma")
    preset = c3.selectbox("Preset", ["tiny", "small", "paper"], key="train_preset")
    # no default in the widget but a first value in the session: Streamlit turns a NaN, ∞ or
    # out-of-range value from the browser into the widget's default, which is then None, not 40
    st.session_state.setdefault("train_epochs", FIRST_RUN.epochs)
    epochs = c3.number_input("Epochs", EPOCHS[0], EPOCHS[1], None, 0.5, format="%g", key="train_epochs")
    device = c1.selectbox("Device", ["auto", "cpu", "cuda"], key="train_device")
    name = c2.text_input("Run name", "", key="train_name", placeholder="e.g. fm-gamma-0.1")
    model = c3.selectbox("Model", list(MODELS), format_func=MODELS.get, key="train_model",
                         help="the IB-INN, or a discriminative baseline of the same size and budget "
                              "(the loss and γ then only matter for VIB, whose β is set from γ)")
    submitted = st.form_submit_button("Start training", type="primary")

if submitted:
    typed: dict[str, str] = {}  # the server's resolved path → the folder as the visitor typed it
    try:
        gamma = parse_gamma(gamma_text)
        if epochs is None:
            raise ValueError(f"Epochs must be a finite number from {EPOCHS[0]:g} to {EPOCHS[1]:g}")
        ds = dataset
        if dataset == "imagefolder:<dir>":
            if not folder:
                raise ValueError("give the folder for imagefolder:")
            resolved = sandbox.allowed_path(folder, "folder")
            typed[str(resolved)] = folder.strip()
            ds = f"imagefolder:{resolved}"
        # the first run's settings (snapshots on; demo data in small batches, for steps enough to
        # watch) with the form's choices; compile stays "auto": only runs of 10+ minutes compile
        config = dataclasses.replace(
            FIRST_RUN, model=model, dataset=ds, mode=mode, gamma=gamma, preset=preset,
            epochs=float(epochs), device=device,
            batch_size=FIRST_RUN.batch_size if ds.startswith("demo:") else TrainConfig.batch_size)
        g = "inf" if math.isinf(gamma) else f"{gamma:g}"
        what = model if model != "ibinn" else (mode if mode != "ib" else "gamma-" + g)
        default = f"{ds.split(':')[-1].split('/')[-1]}-{what}-{preset}"
        job = manager.submit(config, name or default, owner)
        st.success(f"Queued **{job.name}** (about {job.estimate_minutes:.1f} min of compute; "
                   f"writes to `runs/app/{job.name}`).")
    except JobRefused as err:
        st.warning(f"Not started, a limit of this server: {sandbox.hide_paths(str(err), typed)}")
    except DataError as err:
        st.error(f"Data missing: {sandbox.hide_paths(str(err), typed)}")
    except (ValueError, sandbox.PathNotAllowed) as err:
        st.error(f"Invalid settings: {sandbox.hide_paths(str(err), typed)}")


def show(job) -> None:
    with st.container(border=True):
        top = st.columns([3, 1])
        cfg = job.config
        what = registry.gamma_text(cfg.mode, cfg.gamma) if cfg.model == "ibinn" else MODELS[cfg.model]
        top[0].markdown(f"**{job.name}** · {sandbox.hide_paths(cfg.dataset)} · {what} · "
                        f"{cfg.preset} · {cfg.epochs:g} epochs · **{job.status}**")
        if job.active and top[1].button("Cancel", key=f"cancel-{job.id}"):
            manager.cancel(job.id, owner)
            st.toast(f"Cancelling {job.name}…")
        if job.status == "failed":
            st.error(f"**{job.error_kind}**: {sandbox.hide_paths(job.error)}")
        latest = job.latest
        if job.status in ("running", "queued") or latest:
            elapsed = ((job.ended or time.time()) - job.started) if job.started else 0
            text = (f"step {latest.get('step', 0)} / {latest.get('total_steps', '?')} · "
                    f"{elapsed:.0f} s")
            if (remaining := job.remaining_seconds) is not None:
                text += f" · about {remaining:.0f} s left"
            if "loss" in latest:
                text += (f" · loss {latest['loss']:.3f} · acc {latest.get('acc', 0):.3f} · "
                         f"{latest.get('bits_per_dim', float('nan')):.3f} bits/dim")
            st.progress(job.progress if job.status != "finished" else 1.0, text=text)
        snaps = snapshots.training_snapshots(job.out) if job.status != "queued" else {}
        curves_at, forming_at = st.columns([1, 1]) if snaps else (st.container(), None)
        if job.history:
            curves_at.plotly_chart(figures.training_curves(job.history, {
                "loss": "loss", "acc": "training accuracy", "bits_per_dim": "bits/dim (train)",
                "val_error": "validation error"}, per_row=2 if snaps else None),
                key=f"curves-{job.id}-{len(job.history)}")
        if snaps:
            forming_at.markdown("**Latent space forming**: held-out images by true class, μ_y as stars")
            forming_at.plotly_chart(figures.latent_forming(
                snaps["xy"], snaps["mu_xy"], snaps["labels"], [str(c) for c in snaps["classes"]],
                snaps["step"], snaps["accuracy"]), key=f"forming-{job.id}-{len(snaps['step'])}")
        if job.status == "finished":
            m = job.metrics
            if job.config.model == "ibinn":
                st.success(f"Finished: test error {100 * m.get('test_error', float('nan')):.2f} %, "
                           f"{m.get('test_bits_per_dim', float('nan')):.3f} bits/dim. The model is in "
                           f"the sidebar's list as `app/{job.name}`.")
            else:  # no likelihood, no latent space: nothing for the explore pages
                st.success(f"Finished: test error {100 * m.get('test_error', float('nan')):.2f} %. "
                           f"A discriminative baseline has no likelihood or latent space to explore: "
                           f"it is listed on the **Models** page and joins the **γ comparison**.")
        elif job.status == "cancelled":
            st.warning(f"Cancelled; the last checkpoint is kept in runs/app/{job.name}"
                       + (f" ({sandbox.hide_paths(job.error)})" if job.error else ""))


ANNOUNCED = "_train_announced"


@st.fragment(run_every=1.0 if manager.active(owner) else None)  # poll only while a job is active
def jobs_panel() -> None:
    jobs = manager.jobs(owner)
    others = manager.others_active(owner)
    if others:
        st.caption(f"{others} job{'s' if others > 1 else ''} of other sessions queued or running on "
                   f"this server (one runs at a time).")
    if not jobs:
        st.caption("No training runs of yours yet.")
        return
    for job in reversed(jobs):
        show(job)
    ended = {j.id for j in jobs if not j.active}
    if ended - st.session_state.get(ANNOUNCED, set()):
        # a job ended: list its model in the sidebar and stop polling, with one full rerun
        st.session_state[ANNOUNCED] = ended
        registry.scan_models.clear()
        st.rerun(scope="app")


st.subheader("Your runs")
jobs_panel()

"""OoD trajectories: one image under a growing distortion travels out of its class (paper Fig. 12)."""

from __future__ import annotations

import detection
import figures
import latents
import loading
import selection
import streamlit as st
import widgets
from figure_cache import figure

from ibinn import explore

st.title("Out-of-distribution trajectories")
widgets.explain("""
One test image is distorted more and more (left of the animation, press ▶ or drag the slider) and
every version is sent through the network. On the right, the black path is where its latent goes in
the same 2D projection as the **Latent space** page: it leaves its class cluster, which is how the
model notices that the image is unlike anything it was trained on (Fig. 12 of the paper).

The curves below track three scores against the distortion strength; the green band is the range
of 90 % of real demo images (5th to 95th percentile):

* **bits/dim**: how unlikely the image is to the model (higher = less likely);
* **typicality score**: |NLL − mean NLL of real images|, the test statistic used for OoD detection:
  too *unlikely* and too *likely* are both suspicious;
* **prediction entropy**: how unsure the classification is (log K nats = completely unsure).

**When the path stays inside the cloud.** The picture shows two of the latent space's hundreds of
directions. A distorted image can leave its class in directions the picture does not show: its
point then stays among the others here, while the typicality score, which uses every direction,
flags it. The caption under the animation measures how much of the path's movement the picture
shows.

With **small γ** the likelihood is a good model of the data, so the typicality score rises
clearly; with **large γ** the classifier stays confident on images it should not be sure about.
""")

chosen = selection.require_models()
entry = selection.pick_one(chosen, "ood_model")
data = loading.demo_of(entry)
scores = latents.scores_of(entry)  # shipped with zoo models: no demo-set pass
channels = int(entry.image_shape[0])


def show_counterpart(key: str) -> None:
    """Select colour model ``key`` in the sidebar and on this page, with the RGB rotation (a
    callback: it runs before the widgets are drawn)."""
    selection.select_later(key)
    st.session_state["ood_model"] = key
    st.session_state["ood_transform"] = "rgb-rotation"


if channels == 1:
    st.info("This model sees **grey** images: rotating the RGB colour vector (the paper's "
            "distortion for CIFAR-10) means nothing here, so the page offers growing **noise** and "
            "a blend towards the **inverted** image instead.")
    colour = selection.counterpart(entry)
    if colour is not None:
        st.button(f"Show the RGB rotation on {colour.label} (CIFAR-10, {colour.gamma_text})",
                  key="ood_counterpart", icon=":material/palette:",
                  on_click=show_counterpart, args=(colour.key,))

choice = widgets.distortion_controls(data, "ood", steps=13)
spec, n_steps = choice.spec, choice.steps
method = st.radio("Projection", ["pca-means", "pca"], format_func=explore.PROJECTIONS.get,
                  horizontal=True, key="ood_projection")

strengths = choice.strengths()
traj = detection.scored_trajectory(entry.path, entry.mtime, entry.family, choice.index, choice.name,
                                   tuple(strengths.tolist()), scores.reference_nll_mean)
proj, xy, mu_xy = latents.points_of(entry, method)
path_xy = latents.place(entry, method, traj.z)

st.plotly_chart(figure(
    figures.trajectory_animation, xy, scores.labels, data.classes, mu_xy, path_xy, traj.images,
    strengths, spec.strength_label, proj.axis_titles), key="ood_animation")  # opens on the last step
st.caption(f"The picture shows {explore.visible_share(path_xy, traj.z):.0%} of the distance the latent "
           f"travels from the first step to the last (2 of {traj.z.shape[1]} directions); the "
           "typicality score below uses all of them.")

step = st.select_slider(f"Inspect one step ({spec.strength_label})", options=list(range(n_steps)),
                        value=n_steps - 1, format_func=lambda i: f"{strengths[i]:.3g}",
                        key="ood_step", help="Opens on the last step, as the animation does.")
bands = {"bits/dim": explore.in_distribution_range(scores.bits_per_dim),
         "typicality score (nats)": explore.in_distribution_range(scores.typicality),
         "prediction entropy (nats)": explore.in_distribution_range(scores.entropy)}
curves = {"bits/dim": traj.bits_per_dim, "typicality score (nats)": traj.typicality,
          "prediction entropy (nats)": traj.entropy}
st.plotly_chart(figure(figures.trajectory_curves, strengths, curves, bands, spec.strength_label,
                       marker_at=float(strengths[step])), key="ood_curves")

a, b = st.columns([1, 3])
a.image(figures.to_rgb(traj.images[step], 4), caption=f"{spec.strength_label} = {strengths[step]:.3g}")
verdict = explore.ood_verdict(float(traj.typicality[step]), scores.typicality)
# A warning, not an error: an out-of-distribution verdict is a result, not a failure.
(a.success if verdict.in_distribution else a.warning)(
    f"**{verdict.label}**: typicality {verdict.score:.1f} {'≤' if verdict.in_distribution else '>'} "
    f"threshold {verdict.threshold:.1f} (95th percentile of the demo set)")
b.plotly_chart(figure(figures.posterior_bars, traj.proba[step], data.classes,
                      int(data.labels[choice.index])),
               key="ood_bars")

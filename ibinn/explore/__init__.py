"""Latent-space exploration: what the dashboard shows, as plain functions on a model and arrays.

Everything here takes an :class:`ibinn.IBINN` and images (uint8 or float in [0, 1], any layout the
model accepts) and returns NumPy arrays in small dataclasses, so that results can be cached and
plotted without touching torch again. One concept a module; every name is re-exported here, so
``from ibinn import explore; explore.summarize(...)`` is the way to use them.

- :mod:`~ibinn.explore.latent`: :func:`summarize` runs a data set through the model once: latents,
  posteriors, likelihoods, bits/dim, prediction entropy and the typicality score of every image;
  :func:`nearest_neighbours` answers "what lies near this image".
- :mod:`~ibinn.explore.projection`: :func:`fit_projection` fits a 2D view of the latent space: PCA
  of the class means ``μ_y`` (the paper's Fig. 7), the plane through three class means
  (:func:`class_plane`), PCA of the latents, or UMAP. The result projects new latents too.
- :mod:`~ibinn.explore.confusion`: :func:`confusion_matrix` and :func:`most_confused_triple`
  answer "which classes does the model confuse".
- :mod:`~ibinn.explore.distortion`: :func:`trajectory` applies a growing distortion to one image
  (RGB rotation, noise, inversion) and records where it goes in latent space and how its scores
  change (the paper's Fig. 12).
- :mod:`~ibinn.explore.sampling`: :func:`interpolation` decodes a straight line between two
  latents and the posterior along it (Fig. 9); :func:`sample_grid` draws classes x samples
  (Figs. 8, 14).
- :mod:`~ibinn.explore.geometry`: where the classes' real images lie against their ``μ_y``, and how
  far apart the classes stand.
- :mod:`~ibinn.explore.verdict`: :func:`ood_verdict` tests one image against the typicality range
  of a reference set; :func:`fit_image` (from :mod:`ibinn.images`) turns any PIL image into the
  model's size and channels, saying what it did.
- :mod:`~ibinn.explore.detectors` and :mod:`~ibinn.explore.duels`: OoD detectors of generative
  and discriminative models, and two models' best detectors set against each other.
- :mod:`~ibinn.explore.shipped`: :func:`projection_arrays` and :func:`derived_arrays` precompute
  what a zoo model ships.
- :mod:`~ibinn.explore.snapshots`: the latent space forming during training.

Example:
    >>> import ibinn
    >>> from ibinn import explore
    >>> model = ibinn.load("fashion-mnist/gamma-1", device="cpu")
    >>> data = ibinn.load_dataset("demo:fashion-mnist")
    >>> view = explore.summarize(model, data.images[:500], data.labels[:500])
    >>> proj = explore.fit_projection("pca-means", view.z, view.mu)
    >>> proj.transform(view.z).shape
    (500, 2)
"""

from ..images import fit_image
from .confusion import confusion_matrix, most_confused_triple
from .detectors import (
    DETECTORS,
    SCORE_NAMES,
    DetectorScores,
    capability_table,
    detector_arrays,
    detector_aucs,
    detector_scores,
    image_scores,
    is_discriminative,
)
from .distortion import (
    TRANSFORMS,
    Trajectory,
    Transform,
    TransformSpec,
    apply_transform,
    trajectory,
    transforms_for,
)
from .duels import TIE_POINTS, DetectorDuel, detector_duels, duel_summary
from .geometry import centroid_offset, class_centroids, class_separation, spread_ratio, visible_share
from .latent import LatentView, PointScores, nearest_neighbours, summarize
from .projection import (
    MEAN_PROJECTIONS,
    PROJECTIONS,
    Projection,
    class_plane,
    fit_projection,
    knn_embedding,
    plane_titles,
)
from .sampling import Interpolation, interpolation, recognised_by, sample_grid, sample_recognition
from .shipped import (
    SHIPPED_PROJECTIONS,
    derived_arrays,
    projection_arrays,
    shipped_projection,
    shipped_scores,
)
from .snapshots import SnapshotFrame, align_frames, snapshot_frame
from .verdict import Verdict, in_distribution_range, ood_verdict

__all__ = [
    # latent views and projections
    "LatentView", "PointScores", "summarize", "nearest_neighbours",
    "PROJECTIONS", "MEAN_PROJECTIONS", "Projection", "fit_projection", "class_plane", "plane_titles",
    "knn_embedding",
    "confusion_matrix", "most_confused_triple",
    # distortions
    "TRANSFORMS", "Transform", "TransformSpec", "Trajectory", "apply_transform", "trajectory",
    "transforms_for",
    # generation and the classes' geometry
    "Interpolation", "interpolation", "sample_grid", "recognised_by", "sample_recognition",
    "class_centroids", "centroid_offset", "class_separation", "spread_ratio", "visible_share",
    # user images
    "Verdict", "fit_image", "in_distribution_range", "ood_verdict",
    # generative vs discriminative
    "SCORE_NAMES", "DETECTORS", "DetectorScores", "capability_table", "detector_arrays",
    "detector_aucs", "detector_scores", "image_scores", "is_discriminative",
    "TIE_POINTS", "DetectorDuel", "detector_duels", "duel_summary",
    # shipped with the zoo
    "SHIPPED_PROJECTIONS", "derived_arrays", "projection_arrays", "shipped_projection",
    "shipped_scores",
    # training snapshots
    "SnapshotFrame", "align_frames", "snapshot_frame",
]

"""What a loaded archive may hold, checked before anything in it is used or built: how
far its members may inflate, which state names an estimator may receive, what a fitted
DiVAE's state must look like, and whether a network's parameters fit its stored weights.
Every refusal is an :class:`UnsafeArchiveError`; ``_persistence`` reads and writes the
format."""

import io
import re
import zipfile

import numpy as np
from sklearn.decomposition import PCA

from ._build import layer_sizes, resolve_aligner, resolve_prior
from ._divae import DiVAE
from ._knn_density import KNNLogDensity
from ._scoring import SCORES
from .aligners import FlowAligner
from .priors import GaussianMixturePrior, VampPrior


class UnsafeArchiveError(ValueError):
    """The file is not a well-formed skdivae archive; nothing from it was used."""


#: Fitted state besides the public ``name_`` attributes, per class: the private names
#: their ``fit`` sets. Any other state key in an archive is refused.
PRIVATE_STATE = {
    DiVAE: {"_n_features_out"},
    KNNLogDensity: {"_dist_floor", "_fit_dist"},
    PCA: {"_fit_svd_solver"},
}
#: Private state any estimator may carry (scikit-learn's ``set_output`` configuration).
COMMON_PRIVATE_STATE = {"_sklearn_output_config"}
_FITTED_NAME = re.compile(r"[A-Za-z][A-Za-z0-9_]*_\Z")


def check_state_names(cls, state, where):
    """Refuse state keys that are not fitted attributes of ``cls``: a public fitted name
    (``name_``, not a parameter of the class, not a dunder) or one of the class's known
    private names. Parameters can therefore never be set through the state (a
    Pipeline's ``memory`` moved there would make a refit unpickle files)."""
    param_names = set(cls._get_param_names())
    private = PRIVATE_STATE.get(cls, set()) | COMMON_PRIVATE_STATE
    for k in state:
        if not isinstance(k, str) or k in param_names:
            raise UnsafeArchiveError(f"{where}: state entries must be fitted attributes, got {k!r}.")
        if k not in private and not _FITTED_NAME.match(k):
            raise UnsafeArchiveError(
                f"{where}: {k!r} is not a fitted attribute of {cls.__name__}; only names "
                "ending in '_' and the class's own private state are loaded."
            )


def divae_required_state(est):
    """The fitted attributes a fitted DiVAE cannot score without."""
    required = {"n_features_in_", "offset_", "density_dim_", "n_iter_"}
    if est.anomaly_score in ("elbo+log_prior", "min(elbo,log_prior)"):
        required |= {"score_center_", "score_scale_"}
    return required


def check_divae_state(est, where):
    """Refuse a DiVAE whose scoring state could turn every score into NaN, which would
    label every row: a zero or non-finite standardisation scale, a non-finite
    threshold or score scale."""
    scale = est.module_.scale
    if not bool((scale > 0).all()) or not bool((scale > 1e-300).all()):
        raise UnsafeArchiveError(f"{where}: the standardisation scale must be positive.")
    shapes = {"score_center_": (2,), "score_scale_": (2,), "offsets_": (len(SCORES),)}
    for name, shape in shapes.items():
        value = getattr(est, name, None)
        if value is not None and (not isinstance(value, np.ndarray) or value.shape != shape
                                  or value.dtype.kind != "f"):
            raise UnsafeArchiveError(f"{where}: {name} must be a float array of shape {shape}.")
    if not isinstance(est.offset_, (float, np.floating)):
        raise UnsafeArchiveError(f"{where}: offset_ must be a number.")
    if isinstance(est.n_features_in_, bool) or not isinstance(est.n_features_in_, (int, np.integer)):
        raise UnsafeArchiveError(f"{where}: n_features_in_ must be an integer.")
    for name in ("offset_", "offsets_", "score_center_", "score_scale_"):
        value = getattr(est, name, None)
        if value is not None and not np.all(np.isfinite(np.asarray(value, dtype=float))):
            raise UnsafeArchiveError(f"{where}: {name} is not finite.")
    if getattr(est, "score_scale_", None) is not None and not np.all(np.asarray(est.score_scale_) > 0):
        raise UnsafeArchiveError(f"{where}: score_scale_ must be positive.")


def check_architecture(est, tensors, where):
    """Refuse parameters whose network would not match the weights (before building it,
    so that a tampered size cannot make the loader allocate a huge network)."""
    try:
        n_features = int(est.n_features_in_)
        sizes = layer_sizes(est.hidden_layer_sizes)
        n_latent = int(est.n_components)
        widths = [n_features, *sizes, 2 * n_latent]
        expected = sum((a + 1) * b for a, b in zip(widths[:-1], widths[1:]))
        stored = sum(t.numel() for t in tensors.values())
        first = tuple(tensors["encoder.mlp.0.weight"].shape)
        centre = tuple(tensors["center"].shape)
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        raise UnsafeArchiveError(
            f"{where}: the weights do not fit the network described by the parameters ({exc})."
        ) from exc
    if centre != (n_features,) or first != (widths[1], n_features) or expected > stored:
        raise UnsafeArchiveError(
            f"{where}: the weights do not fit the network described by the parameters."
        )
    # The prior's and the aligner's sizes, against their stored tensors, before anything is
    # built: a huge setting in a small file must not allocate its module first.
    def stored_in(prefix):
        return sum(t.numel() for k, t in tensors.items() if k.startswith(prefix))

    try:
        prior, aligner = resolve_prior(est.prior), resolve_aligner(est.aligner)
        needs = {"prior.": 0, "aligner.": 0}
        if isinstance(prior, GaussianMixturePrior):
            needs["prior."] = int(prior.n_components) * n_latent
        elif isinstance(prior, VampPrior):
            needs["prior."] = int(prior.n_components) * n_features
        if isinstance(aligner, FlowAligner):
            needs["aligner."] = int(aligner.n_layers) * int(aligner.hidden_units)
    except (TypeError, ValueError, AttributeError) as exc:
        raise UnsafeArchiveError(f"{where}: invalid prior or aligner ({exc}).") from exc
    for prefix, need in needs.items():
        if need > stored_in(prefix):
            raise UnsafeArchiveError(
                f"{where}: the {prefix[:-1]} described by the parameters needs at least {need} "
                f"numbers, but the archive stores {stored_in(prefix)}."
            )


#: An archive's members may inflate to at most this many bytes in all, or to
#: ``INFLATE_RATIO`` times the file's size if that is more: a small file cannot make
#: ``load`` allocate hundreds of megabytes (a zip bomb), while a large model's archive
#: (weights and arrays of floats compress little) is well inside.
MIN_INFLATE_CAP, INFLATE_RATIO = 64 * 2**20, 20


#: Estimators (pipeline steps, priors, aligners, teachers...) one archive may hold.
MAX_ESTIMATORS = 256
#: The manifest holds parameters and small fitted values; every array is in the arrays member.
MAX_MANIFEST_BYTES = 8 * 2**20


def check_inner_sizes(raw, cap, path, member):
    """The arrays ``member`` (``raw``, its bytes) is itself a zip: its members may not
    inflate past the same cap."""
    try:
        with zipfile.ZipFile(io.BytesIO(raw)) as inner:
            declared = sum(info.file_size for info in inner.infolist())
    except zipfile.BadZipFile as exc:
        raise UnsafeArchiveError(f"{path}: {member} is not an .npz archive.") from exc
    if declared > cap:
        raise UnsafeArchiveError(
            f"{path}: the arrays in {member} would inflate to {declared} bytes, more than the "
            f"{cap} this file may hold (see inflate_cap)."
        )


def inflate_cap(file_size):
    """The most bytes the members of a ``file_size``-byte archive may inflate to."""
    return max(MIN_INFLATE_CAP, INFLATE_RATIO * int(file_size))


def read_member(zf, name):
    """A member's bytes, read no further than its declared size (a member that inflates
    beyond what its header declares is refused, not read to the end)."""
    info = zf.getinfo(name)
    with zf.open(info) as fh:
        data = fh.read(info.file_size + 1)
    if len(data) > info.file_size:
        raise UnsafeArchiveError(f"{name} inflates beyond its declared size.")
    return data


def unique_keys(pairs):
    """``json`` object hook: refuse duplicate keys (by default the last one wins)."""
    seen = set()
    for key, _ in pairs:
        if key in seen:
            raise UnsafeArchiveError(f"duplicate key {key!r} in the manifest.")
        seen.add(key)
    return dict(pairs)

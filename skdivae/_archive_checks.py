"""What a loaded archive may hold, checked before anything in it is used or built: how
far its members may inflate, which state names an estimator may receive, what a fitted
DiVAE's state must look like, and whether a network's parameters fit its stored weights.
Every refusal is an :class:`UnsafeArchiveError`; ``_archive_reader`` and
``_archive_writer`` read and write the format."""

import io
import json
import re
import zipfile

import numpy as np
from sklearn.decomposition import PCA
from sklearn.feature_selection import VarianceThreshold
from sklearn.mixture import GaussianMixture
from sklearn.neighbors import NearestNeighbors
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import MaxAbsScaler, MinMaxScaler, RobustScaler, StandardScaler

from ._build import layer_sizes, resolve_aligner, resolve_prior
from ._divae import DiVAE
from ._knn_density import KNNLogDensity
from ._scoring import SCORES
from ._torch_utils import MAX_ROW_NUMBERS, elbo_row_numbers
from .aligners import FlowAligner
from .priors import GaussianMixturePrior, VampPrior, mixture_components


class UnsafeArchiveError(ValueError):
    """The file is not a well-formed skdivae archive; nothing from it was used."""


#: Fitted state besides the public ``name_`` attributes, per class: the private names
#: their ``fit`` sets. Any other state key in an archive is refused.
PRIVATE_STATE = {
    DiVAE: {"_n_features_out", "_legacy_thresholds"},
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
    buffers = dict(est.module_.named_buffers())
    # Fixed buffers that no training moves: N(0, I)'s location and scale (a scale of 1e-200
    # turned every score into NaN), and the flow's projection scales (at least 1e-6 when
    # they were set from the data).
    if {"prior.loc", "prior.scale"} <= set(buffers) and not (
            bool((buffers["prior.loc"] == 0).all()) and bool((buffers["prior.scale"] == 1).all())):
        raise UnsafeArchiveError(f"{where}: the N(0, I) prior's buffers prior.loc and "
                                 "prior.scale must be 0 and 1.")
    for name, buffer in buffers.items():
        if name.endswith("u_scale") and not bool((buffer >= 1e-7).all()):
            raise UnsafeArchiveError(f"{where}: the buffer {name} must be at least 1e-7.")
    if elbo_row_numbers(est.module_) > MAX_ROW_NUMBERS:
        raise UnsafeArchiveError(
            f"{where}: scoring one row would need about {elbo_row_numbers(est.module_):.3g} "
            f"numbers, more than DiVAE's largest network allows ({MAX_ROW_NUMBERS:.3g}).")
    shapes = {"score_center_": (2,), "score_scale_": (2,), "offsets_": (len(SCORES),),
              "score_quantiles_": (len(SCORES), 1001)}
    for name, shape in shapes.items():
        value = getattr(est, name, None)
        if value is not None and (not isinstance(value, np.ndarray) or value.shape != shape
                                  or value.dtype.kind != "f"):
            raise UnsafeArchiveError(f"{where}: {name} must be a float array of shape {shape}.")
    if not isinstance(est.offset_, (float, np.floating)):
        raise UnsafeArchiveError(f"{where}: offset_ must be a number.")
    if isinstance(est.n_features_in_, bool) or not isinstance(est.n_features_in_, (int, np.integer)):
        raise UnsafeArchiveError(f"{where}: n_features_in_ must be an integer.")
    n_out = getattr(est, "_n_features_out", est.n_components)
    if isinstance(n_out, bool) or not isinstance(n_out, (int, np.integer)) \
            or n_out != est.module_.encoder.n_latent:
        # (transform's feature names are built from it)
        raise UnsafeArchiveError(f"{where}: _n_features_out must be the latent size.")
    quantiles = getattr(est, "score_quantiles_", None)
    if quantiles is not None and not bool((np.diff(quantiles, axis=1) >= 0).all()):
        raise UnsafeArchiveError(f"{where}: score_quantiles_ must be non-decreasing.")
    for name in ("offset_", "offsets_", "score_center_", "score_scale_", "score_quantiles_"):
        value = getattr(est, name, None)
        if value is not None and not np.all(np.isfinite(np.asarray(value, dtype=float))):
            raise UnsafeArchiveError(f"{where}: {name} is not finite.")
    if getattr(est, "score_scale_", None) is not None and not np.all(np.asarray(est.score_scale_) > 0):
        raise UnsafeArchiveError(f"{where}: score_scale_ must be positive.")


def check_feature_names(est, where):
    """Refuse ``feature_names_in_`` that is not a 1-D array of ``n_features_in_`` strings
    (scikit-learn compares every name at every call with a DataFrame)."""
    names = getattr(est, "feature_names_in_", None)
    if names is None:
        return
    n = getattr(est, "n_features_in_", None)
    if not isinstance(names, np.ndarray) or names.ndim != 1 or n is None \
            or isinstance(n, bool) or not isinstance(n, (int, np.integer)) \
            or names.shape[0] != n or not all(isinstance(x, str) for x in names.tolist()):
        raise UnsafeArchiveError(
            f"{where}: feature_names_in_ must be a 1-D array of n_features_in_ strings."
        )


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
        prior, aligner = resolve_prior(est.prior, n_latent), resolve_aligner(est.aligner)
        needs = {"prior.": 0, "aligner.": 0}
        if isinstance(prior, GaussianMixturePrior):
            needs["prior."] = mixture_components(prior.n_components, n_latent) * n_latent
        elif isinstance(prior, VampPrior):
            needs["prior."] = int(prior.n_components) * n_features
        if isinstance(aligner, FlowAligner):
            needs["aligner."] = int(aligner.n_layers) * int(aligner.hidden_units)
    except (TypeError, ValueError, AttributeError) as exc:
        raise UnsafeArchiveError(f"{where}: invalid prior or aligner ({exc}).") from exc
    # Every layer the parameters describe must be among the stored tensors (a weight and
    # a bias each), so that a long list of tiny layers cannot make the loader lay out
    # thousands of modules before the names are compared.
    n_linear = 2 * (len(sizes) + 1)  # encoder and decoder
    if isinstance(aligner, FlowAligner):
        n_linear += 2 * int(aligner.n_layers)  # two per coupling layer
    if 2 * n_linear > len(tensors):
        raise UnsafeArchiveError(
            f"{where}: the parameters describe {n_linear} layers, but the archive stores "
            f"{len(tensors)} tensors."
        )
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
#: Entries (values, lists, mappings) the manifest may hold in all: a fitted model has a few
#: thousand (its training history: one small mapping per epoch).
MAX_NODES = 500_000
#: Arrays in the arrays member, and tensors in one network's weights.
MAX_ARRAYS, MAX_TENSORS = 10_000, 4_096
#: How members may be compressed: what ``save`` writes (others, e.g. LZMA, are refused).
COMPRESSIONS = (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED)


def check_compression(zf, path):
    """Refuse members compressed otherwise than ``save`` does."""
    odd = [info.filename for info in zf.infolist() if info.compress_type not in COMPRESSIONS]
    if odd:
        raise UnsafeArchiveError(
            f"{path}: member {odd[0]!r} is compressed with a method this loader does not read."
        )


def count_tensors(raw, where):
    """Read a safetensors header (8-byte length, then JSON) and refuse more than
    :data:`MAX_TENSORS` tensors before any is materialised."""
    if len(raw) < 8:
        raise UnsafeArchiveError(f"{where}: unreadable weights (no header).")
    size = int.from_bytes(raw[:8], "little")
    if size > len(raw) - 8:
        raise UnsafeArchiveError(f"{where}: unreadable weights (header past the end).")
    try:
        header = json.loads(raw[8:8 + size], object_pairs_hook=unique_keys)
    except ValueError as exc:
        raise UnsafeArchiveError(f"{where}: unreadable weights header ({exc}).") from exc
    if not isinstance(header, dict):
        raise UnsafeArchiveError(f"{where}: unreadable weights header.")
    n = len(header) - ("__metadata__" in header)
    if n > MAX_TENSORS:
        raise UnsafeArchiveError(f"{where}: {n} tensors in one network's weights (at most "
                                 f"{MAX_TENSORS}).")
#: The manifest holds parameters and small fitted values; every array is in the arrays member.
MAX_MANIFEST_BYTES = 8 * 2**20


def check_inner_sizes(raw, cap, path, member):
    """The arrays ``member`` (``raw``, its bytes) is itself a zip: its members may not
    inflate past the same cap."""
    try:
        with zipfile.ZipFile(io.BytesIO(raw)) as inner:
            infos = inner.infolist()
            check_compression(inner, f"{path}: {member}")
    except zipfile.BadZipFile as exc:
        raise UnsafeArchiveError(f"{path}: {member} is not an .npz archive.") from exc
    if len(infos) > MAX_ARRAYS:
        raise UnsafeArchiveError(f"{path}: {member} holds more than {MAX_ARRAYS} arrays.")
    declared = sum(info.file_size for info in infos)
    if declared > cap:
        raise UnsafeArchiveError(
            f"{path}: the arrays in {member} would inflate to {declared} bytes, more than the "
            f"{cap} this file may hold (see inflate_cap)."
        )


def check_search_tree(nn, fit_X, where):
    """Refuse a neighbour index whose rebuilt search tree would be both large (more than
    ``MIN_INFLATE_CAP`` bytes) and more than twice the size of the data it indexes:
    ``leaf_size`` comes from the file, and a tree of leaf size 1 over a large, highly
    compressible ``_fit_X`` would make a small archive allocate hundreds of megabytes.
    scikit-learn's KD and ball trees hold about ``2 n / leaf_size`` nodes of ``2 d + 4``
    numbers (an upper bound for ``algorithm="auto"``, which may build none). Every leaf
    size passes on up to half a million indexed rows, the default (30) on any number.
    ``save`` runs the same check, so what it writes loads."""
    leaf_size, algorithm = nn.leaf_size, nn.algorithm
    if isinstance(leaf_size, bool) or not isinstance(leaf_size, (int, np.integer)) \
            or leaf_size < 1:
        raise UnsafeArchiveError(f"{where}: leaf_size must be a positive int, got {leaf_size!r}.")
    if algorithm == "brute" or not isinstance(fit_X, np.ndarray) or fit_X.ndim != 2:
        return
    n_samples, n_features = fit_X.shape
    tree_bytes = 8 * 2 * -(-n_samples // int(leaf_size)) * (2 * n_features + 4)
    if tree_bytes > max(MIN_INFLATE_CAP, 2 * 8 * fit_X.size):
        raise UnsafeArchiveError(
            f"{where}: a search tree with leaf_size={leaf_size} over {n_samples} rows of "
            f"{n_features} features would take about {tree_bytes / 2**20:.0f} MiB, more than "
            "twice the data it indexes; such an index is not saved or loaded (use a larger "
            "leaf_size, e.g. the default 30)."
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


def _shape_of(value):
    return value.shape if isinstance(value, np.ndarray) and value.dtype.kind == "f" else None


def _expected_shapes(est):
    """Shapes a loaded scaler's, PCA's or GaussianMixture's fitted arrays must have,
    from its own sizes (``None``: the attribute may also be absent or ``None``)."""
    n = getattr(est, "n_features_in_", None)
    if isinstance(est, (StandardScaler, MinMaxScaler, RobustScaler, MaxAbsScaler)):
        names = ("mean_", "var_", "scale_", "min_", "data_min_", "data_max_", "data_range_",
                 "center_", "max_abs_")
        return {name: (n,) for name in names}
    if isinstance(est, VarianceThreshold):
        return {"variances_": (n,)}
    if isinstance(est, PCA):
        c = getattr(est, "n_components_", None)
        return {"mean_": (n,), "components_": (c, n), "explained_variance_": (c,),
                "explained_variance_ratio_": (c,), "singular_values_": (c,)}
    if isinstance(est, GaussianMixture):
        k = est.n_components
        cov = {"full": (k, n, n), "tied": (n, n), "diag": (k, n), "spherical": (k,)}[
            est.covariance_type]
        return {"weights_": (k,), "means_": (k, n), "covariances_": cov,
                "precisions_": cov, "precisions_cholesky_": cov}
    return {}


def check_fitted_shapes(est, where):
    """Refuse a loaded estimator whose fitted arrays disagree with its sizes (a scale of
    length 1 would broadcast over every feature and give finite, wrong answers)."""
    n = getattr(est, "n_features_in_", None)
    if n is not None and (isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 1):
        raise UnsafeArchiveError(f"{where}: n_features_in_ must be a positive integer.")
    for name, shape in _expected_shapes(est).items():
        value = getattr(est, name, None)
        if value is not None and _shape_of(value) != tuple(shape):
            raise UnsafeArchiveError(
                f"{where}: {name} must be a float array of shape {tuple(shape)}."
            )
    if isinstance(est, KNNLogDensity) and hasattr(est, "nn_"):
        _check_knn_state(est, where)


def _check_knn_state(est, where):
    nn = est.nn_
    if not isinstance(nn, NearestNeighbors) or not hasattr(nn, "n_samples_fit_"):
        raise UnsafeArchiveError(f"{where}: nn_ must be a fitted NearestNeighbors.")
    if nn.metric != "minkowski" or nn.p != 2:
        raise UnsafeArchiveError(f"{where}: nn_ must use Euclidean distances.")
    pca = getattr(est, "pca_", None)
    if pca is not None and not isinstance(pca, PCA):
        raise UnsafeArchiveError(f"{where}: pca_ must be a PCA or None.")
    n_fit, k = nn.n_samples_fit_, est.n_neighbors_
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or not 1 <= k <= n_fit:
        raise UnsafeArchiveError(f"{where}: n_neighbors_ must be an integer in [1, {n_fit}].")
    dim = est.intrinsic_dim_
    if isinstance(dim, bool) or not isinstance(dim, (float, int, np.number)) or not (
        np.isfinite(dim) and dim > 0
    ):
        raise UnsafeArchiveError(f"{where}: intrinsic_dim_ must be a positive number.")
    floor = getattr(est, "_dist_floor", 0.0)
    if np.ndim(floor) != 0 or not (np.isfinite(floor) and floor >= 0):
        raise UnsafeArchiveError(f"{where}: _dist_floor must be a non-negative number.")
    fit_dist = getattr(est, "_fit_dist", None)
    method = getattr(est, "method_", est.method)
    if method not in ("knn", "pak") or (method == "pak" and fit_dist is None):
        raise UnsafeArchiveError(f"{where}: method_ must be 'knn', or 'pak' with the "
                                 "training distances (_fit_dist).")
    if method == "pak" and k < 2 <= n_fit - 1:
        raise UnsafeArchiveError(f"{where}: method 'pak' needs n_neighbors_ >= 2, as fit does.")
    width = getattr(nn, "_fit_X", None)
    width = width.shape[1] if isinstance(width, np.ndarray) and width.ndim == 2 else None
    n_in = getattr(est, "n_features_in_", None)
    expected_in = n_in if pca is None else getattr(pca, "n_features_in_", None)
    expected_width = n_in if pca is None else getattr(pca, "n_components_", None)
    if n_in is None or expected_in != n_in or (width is not None and width != expected_width) \
            or getattr(est, "n_components_", expected_width) != expected_width:
        raise UnsafeArchiveError(
            f"{where}: n_features_in_, pca_ and the neighbour index disagree on the number "
            "of features."
        )
    if fit_dist is not None and (
        _shape_of(fit_dist) is None or fit_dist.ndim != 2 or fit_dist.shape[0] != n_fit
        or fit_dist.shape[1] < k
    ):
        raise UnsafeArchiveError(f"{where}: _fit_dist must be a float array with one row "
                                 "per indexed sample.")


#: Fitted arrays of the supported scikit-learn steps that must be finite, and those of them
#: that must also be positive (a scale or whitening variance of 0 or less, which fit never
#: writes, turns every score into NaN or a constant).
_FINITE = ("mean_", "var_", "scale_", "min_", "data_min_", "data_max_", "data_range_",
           "center_", "max_abs_", "components_", "explained_variance_", "variances_",
           "weights_", "means_", "covariances_", "precisions_", "precisions_cholesky_")
_POSITIVE = ("scale_", "max_abs_")


def check_fitted_values(est, where):
    """Refuse a loaded scikit-learn step whose fitted values its ``fit`` could not have
    written (non-finite arrays, a non-positive scale or whitening variance, an empty
    ``feature_range`` or selection), and a Pipeline whose steps disagree on the number of
    features or repeat a name: each would give wrong scores, or errors that blame the
    caller's data, instead of a refusal that names the file."""
    for name in _FINITE:
        value = getattr(est, name, None)
        if isinstance(value, np.ndarray) and not np.all(np.isfinite(value)):
            raise UnsafeArchiveError(f"{where}: {name} is not finite.")
    for name in _POSITIVE:
        value = getattr(est, name, None)
        if isinstance(value, np.ndarray) and not np.all(value > 0):
            raise UnsafeArchiveError(f"{where}: {name} must be positive.")
    if isinstance(est, MinMaxScaler):
        try:
            low, high = (float(v) for v in est.feature_range)
        except (TypeError, ValueError):
            low, high = np.nan, np.nan
        if not (np.isfinite(low) and np.isfinite(high) and low < high):
            raise UnsafeArchiveError(f"{where}: feature_range must be two finite numbers, "
                                     "the first smaller.")
    if isinstance(est, PCA) and getattr(est, "explained_variance_", None) is not None:
        variance = est.explained_variance_
        if not np.all(variance > 0 if est.whiten else variance >= 0):
            raise UnsafeArchiveError(f"{where}: explained_variance_ must be "
                                     + ("positive (whiten=True)." if est.whiten else "non-negative."))
    if isinstance(est, VarianceThreshold) and getattr(est, "variances_", None) is not None:
        if not np.all(est.variances_ >= 0) or not est.get_support().any():
            raise UnsafeArchiveError(f"{where}: variances_ must be non-negative and keep a "
                                     "feature above threshold.")
    if isinstance(est, Pipeline):
        _check_pipeline_chain(est, where)


def _n_features_out(step):
    """How many features a supported fitted step hands on (None: unknown or unfitted)."""
    if isinstance(step, VarianceThreshold):
        return int(step.get_support().sum()) if hasattr(step, "variances_") else None
    if isinstance(step, PCA):
        return getattr(step, "n_components_", None)
    return getattr(step, "n_features_in_", None)


def _check_pipeline_chain(pipe, where):
    names = [name for name, _ in pipe.steps]
    if len(set(names)) != len(names):
        raise UnsafeArchiveError(f"{where}: the Pipeline's step names repeat ({names}).")
    for (name_a, a), (name_b, b) in zip(pipe.steps, pipe.steps[1:]):
        out, wanted = _n_features_out(a), getattr(b, "n_features_in_", None)
        if out is not None and wanted is not None and int(out) != int(wanted):
            raise UnsafeArchiveError(
                f"{where}: step {name_a!r} hands on {out} features, but step {name_b!r} was "
                f"fitted on {wanted}.")

"""What DiVAE's training loop consumes, made from the validated input: the
standardisation, the density teacher and its targets, the per-sample weights, and
the optional held-out split. Numpy in, torch tensors out; no estimator state."""

import warnings
from collections import namedtuple

import numpy as np
import torch
from sklearn.base import clone

from ._knn_density import DuplicateRowsWarning, KNNLogDensity
from ._nn.aligners import precision_weight
from ._pipelines import final_step
from ._torch_utils import as_tensor

#: The default density teacher (docs/alignment.md): plain kNN, 30 neighbours.
DENSITY_METHOD, DENSITY_NEIGHBORS = "knn", 30
#: Rows the default teacher's neighbour index holds at most; the others are queried
#: against it (a leave-one-out query of a million rows in 8 PCA dimensions takes well
#: over ten minutes on one core; against 100 000 indexed rows, about one).
DENSITY_MAX_SAMPLES = 100_000


#: Largest magnitude and smallest spread DiVAE trains on: the network runs in float32
#: (normal numbers from 1.2e-38 to 3.4e38) and the Gaussian likelihood squares its scale.
MAX_ABS_VALUE, MIN_ABS_SCALE = 1e18, 1e-15
#: A column is constant when its spread is at most ``max(n_samples, CONSTANT_MIN_ULPS)``
#: float64 units of rounding of its mean (scikit-learn's test for constant features in its
#: scalers, which grows with the rows that the moments sum over): rounding noise, whether
#: from the moments' own sums or from how the column was computed. A wider spread is
#: resolved in float64 (where the data are standardised) and the column is standardised
#: like any other (1e-12 of the mean before, whatever the rows: a column of mean 1e14 and
#: spread 35 on 300 rows was left unscaled).
CONSTANT_MIN_ULPS = 100


def standardizes(est):
    """Whether ``est`` standardises its input: ``standardize``, except with a Bernoulli
    decoder, whose targets are the values in [0, 1] themselves (the network trains on the
    standardised rows, so standardising would hand it targets outside [0, 1])."""
    return bool(est.standardize) and est.likelihood != "bernoulli"


def standardization(X, enabled):
    """Per-feature ``(center, scale)``: training mean and standard deviation, or zeros
    and ones when ``enabled`` is False.

    A column is constant when its standard deviation is rounding noise, at most
    ``max(n_samples, 100) * eps`` times its mean's magnitude (a relative test: data of any
    scale keep their spread); constant columns keep scale 1. The moments are computed on
    the data divided by each column's largest magnitude, so large values do not overflow
    when squared.

    Raises
    ------
    ValueError
        If values are too large or a column's spread too small for float32 training.
    """
    n_features = X.shape[1]
    # The moments in float64 whatever the input's dtype: float32 sums lose a column's
    # spread around a large mean (the network still trains in float32, on standardised data).
    X = np.asarray(X, dtype=np.float64)
    peak = check_magnitude(X)
    if not enabled:
        return np.zeros(n_features), np.ones(n_features)
    center, std = column_moments(X, peak)
    return scale_from_moments(center, std, X.shape[0])


def check_magnitude(X):
    """Each column's largest magnitude; a ValueError where it is too large for float32."""
    peak = np.max(np.abs(X), axis=0) if X.size else np.zeros(X.shape[1])
    if np.any(peak > MAX_ABS_VALUE):
        col = int(np.argmax(peak))
        raise ValueError(
            f"X has values up to {peak[col]:.3g} in magnitude (column {col}); DiVAE trains in "
            f"float32 and cannot standardise values beyond {MAX_ABS_VALUE:.0e}. Divide X by a "
            "constant (or use a scaler before DiVAE)."
        )
    return peak


def scale_from_moments(center, std, n_samples):
    """``(center, scale)`` from the columns' means and standard deviations over
    ``n_samples`` rows: constant columns (a spread of at most ``max(n_samples,
    CONSTANT_MIN_ULPS)`` units of rounding of the mean) keep scale 1."""
    constant = constant_columns(center, std, n_samples)
    small = ~constant & (std < MIN_ABS_SCALE)
    if np.any(small):
        col = int(np.argmax(small))
        raise ValueError(
            f"column {col} of X varies by only {std[col]:.3g}; DiVAE trains in float32 and "
            f"cannot resolve spreads below {MIN_ABS_SCALE:.0e}. Multiply X by a constant."
        )
    return center, np.where(constant, 1.0, std)


def constant_columns(center, std, n_samples):
    """Which columns are constant: a spread of at most ``max(n_samples, CONSTANT_MIN_ULPS)``
    units of rounding of the mean (``CONSTANT_MIN_ULPS``)."""
    ulps = max(int(n_samples), CONSTANT_MIN_ULPS) * np.finfo(np.float64).eps
    return std <= ulps * np.abs(center)


def column_moments(X, peak=None):
    """Each column's mean and standard deviation in float64, computed on the data divided
    by the column's largest magnitude ``peak`` (computed when not given: large values do
    not overflow when squared)."""
    X = np.asarray(X, dtype=np.float64)
    if peak is None:
        peak = np.max(np.abs(X), axis=0) if X.size else np.zeros(X.shape[1])
    unit = np.where(peak > 0, peak, 1.0)
    scaled = X / unit
    return scaled.mean(axis=0) * unit, scaled.std(axis=0) * unit


def fit_density(density, X_std, n_latent, seed):
    """Fit ``density`` (``None``: the default kNN teacher on ``n_latent`` PCA dimensions,
    the latent size, capped by the data) on the standardised training data."""
    if density is None:
        n_dim = min(n_latent, X_std.shape[1], X_std.shape[0])
        density = KNNLogDensity(
            DENSITY_NEIGHBORS,
            method=DENSITY_METHOD,
            n_components=n_dim,
            max_samples=DENSITY_MAX_SAMPLES,
            random_state=seed,
        )
    else:
        density = clone(density)
        # A teacher left unseeded draws from DiVAE's seed, so that random_state=int makes
        # the whole fit repeatable and leaves numpy's global state alone; a seed the user
        # gave the teacher is kept.
        unseeded = {name: seed for name, value in density.get_params(deep=True).items()
                    if (name == "random_state" or name.endswith("__random_state"))
                    and value is None}
        try:
            density.set_params(**unseeded)
        except (TypeError, ValueError):  # a teacher that takes no int seed stays as given
            pass
    with warnings.catch_warnings():
        # Small data: the neighbour count is clamped, which is expected here.
        warnings.filterwarnings("ignore", message="n_neighbors .* is not smaller")
        # Rows with many exact copies get the floor's density: the aligner's Huber penalty
        # pulls them with a bounded force whatever their target beyond its threshold, so
        # DiVAE's fit does not depend on the floor's size, and the warning would only alarm.
        warnings.filterwarnings("ignore", category=DuplicateRowsWarning)
        # The fitted object is the teacher itself, whatever its fit returns (scikit-learn's
        # Pipeline does the same: a fit that forgets ``return self`` still fits).
        density.fit(_private_copy(density, X_std))
    return density


def _private_copy(density, X_std):
    """``X_std`` itself for skdivae's own teacher, else a copy: the standardised rows are
    also the network's training data, and a user's teacher may transform its input in place
    (``MinMaxScaler(copy=False)`` in a pipeline)."""
    return X_std if type(density) is KNNLogDensity else np.array(X_std, copy=True)


def training_targets(density, X):
    """Density targets for the training rows of ``X`` and their standard errors.

    Uses the leave-one-out values a :class:`~skdivae.KNNLogDensity` stores at
    fit time, also as the last step of a pipeline (its rows are the training rows,
    transformed by the steps before it); for any other estimator,
    ``score_samples(X)`` with unit errors.
    """
    final, _ = final_step(density, nested=True)
    log_density = getattr(final, "log_density_", None)
    if log_density is not None and len(log_density) == X.shape[0]:
        return np.asarray(log_density, float), np.asarray(final.log_density_err_, float)
    target = np.asarray(density.score_samples(_private_copy(density, X)), dtype=float)
    return target, np.ones_like(target)


def query_targets(density, X_std):
    """The teacher's log-densities and errors at rows new to it, unchecked: a
    :class:`~skdivae.KNNLogDensity`'s query (also as a pipeline's last step) gives their
    standard errors, another estimator's ``score_samples`` unit errors."""
    final, _ = final_step(density, nested=True)
    if isinstance(final, KNNLogDensity):
        _, rows = final_step(density, _private_copy(density, X_std), nested=True)
        # an array whatever scikit-learn's output setting (set_output, set_config)
        target, err = np.asarray(final.transform(rows), dtype=float).T
        return target, err
    target = np.asarray(density.score_samples(_private_copy(density, X_std)), dtype=float)
    return target, np.ones_like(target)


def density_targets(density, X_std, fitted_on_X=True):
    """The teacher's log-densities and errors at the rows of ``X_std``; a clear error if
    not usable. ``fitted_on_X``: the teacher was fitted on these very rows (its
    leave-one-out values are used); else the rows are new to it and are queried (a
    :class:`~skdivae.KNNLogDensity` gives their standard errors, as for the rows beyond
    its ``max_samples`` in ``fit``; another estimator unit errors)."""
    target, err = training_targets(density, X_std) if fitted_on_X \
        else query_targets(density, X_std)
    target, err = np.asarray(target, dtype=float), np.asarray(err, dtype=float)
    n = X_std.shape[0]
    if target.shape != (n,) or err.shape != (n,):
        raise ValueError(
            f"the density estimator {type(density).__name__} must return one log-density per "
            f"training row, shape ({n},); it returned shape {target.shape} (errors "
            f"{err.shape})."
        )
    if not (np.isfinite(target).all() and np.isfinite(err).all() and (err > 0).all()):
        raise ValueError(
            "the density estimator returned non-finite log-densities or errors "
            "on the training data; check its settings (e.g. a KernelDensity bandwidth)."
        )
    return target, err


def trimmed_count(n_samples, trim_fraction):
    """How many rows ``trim_fraction`` leaves out of the ELBO: ``floor((n - 1) * f) + 1``,
    the rows at or below numpy's ``trim_fraction`` quantile when no two targets tie, so
    the count never depends on ties (the lowest rows go, ties broken by row order) and
    stays below half the rows (``f < 0.5``)."""
    return int(np.floor((n_samples - 1) * trim_fraction)) + 1


def training_arrays(X, target, err, trim_fraction, device):
    """``(X, target, precision weight, elbo_weight)`` as tensors on ``device``;
    ``elbo_weight`` is 0 for the ``trimmed_count`` rows with the lowest targets, ``None``
    without trimming."""
    keep = None
    if trim_fraction > 0:
        keep = np.ones(len(target))
        keep[np.argsort(target, kind="stable")[: trimmed_count(len(target), trim_fraction)]] = 0.0
    return _as_tensors(X, target, err, keep, device)


def _as_tensors(X, target, err, keep, device):
    """``(X, target, precision weight, elbo_weight)`` on ``device``; ``keep`` (1 = the row
    counts in the ELBO) becomes ``elbo_weight``, ``None`` stays ``None``."""
    weight = precision_weight(torch.tensor(err)).numpy()
    arrays = [as_tensor(a, device=device) for a in (X, target, weight)]
    return (*arrays, None if keep is None else as_tensor(keep, device=device))


def holdout_split(arrays, rng, validation_fraction, device):
    """Split the training tuple into ``(train, valid)`` with a random held-out share."""
    n_samples = arrays[0].shape[0]
    order = rng.permutation(n_samples)
    n_valid = max(1, int(round(validation_fraction * n_samples)))
    if n_samples - n_valid < 2:
        raise ValueError("too few samples to hold out a validation set.")
    v_idx, t_idx = (torch.as_tensor(o, device=device) for o in np.split(order, [n_valid]))
    train = tuple(None if a is None else a[t_idx] for a in arrays)
    valid = tuple(None if a is None else a[v_idx] for a in arrays)
    return train, valid


def density_dim(density, n_latent):
    """The dimension of the space the teacher estimates in: the ``n_components_`` of a
    :class:`~skdivae.KNNLogDensity` (the last step of a pipeline counts), else the number
    of features the estimating step was fitted on (``KernelDensity``, ``GaussianMixture``,
    or after a pipeline's PCA), else the latent size."""
    final, _ = final_step(density, nested=True)
    for name in ("n_components_", "n_features_in_"):
        value = getattr(final, name, None)
        if isinstance(value, (int, np.integer)) and not isinstance(value, bool) and value > 0:
            return int(value)
    return int(n_latent)


#: Which rows tied at the trimming threshold a later block leaves out: row ``g`` (its index
#: among all rows) when ``frac(g * TIE_STEP) < tie_share``. An irrational step spreads the
#: chosen rows evenly over any run or stride of row indices, without state between blocks.
TIE_STEP = (np.sqrt(5.0) - 1.0) / 2.0


class TrimCut(namedtuple("TrimCut", "threshold tie_share tolerance", defaults=(0.0,))):
    """Where :func:`training_arrays` cut a sample of targets: rows below ``threshold``
    left the ELBO, and of those tied with it the share ``tie_share`` (1 where no two
    targets tie; on discrete data, where many rows share the lowest target, a fraction).
    Later rows within ``tolerance`` of the threshold count as tied with it: 0 without
    ties; with them, twice ``log(n / (n - 1))`` for ``n`` sample rows, the amount by which
    a kNN teacher's value of a new copy of a row (a query among ``n`` rows) falls below its
    leave-one-out value in the sample (among ``n - 1``)."""


def trim_threshold(target, trim_fraction):
    """The :class:`TrimCut` of :func:`training_arrays` on ``target``: the largest target
    it leaves out of the ELBO (``-inf`` without trimming), the share of the targets tied
    with it that it leaves out, and the tolerance of a tie. Later blocks leave out every
    row below the threshold and that share of the rows tied with it (:func:`block_arrays`), so ties do not widen the cut:
    a threshold alone would drop every tied row, all of them on data with few distinct
    values."""
    if trim_fraction <= 0:
        return TrimCut(-np.inf, 1.0)
    count, n = trimmed_count(len(target), trim_fraction), len(target)
    threshold = float(np.sort(target, kind="stable")[count - 1])
    # copies of a row whose values differ in their last bits tie too
    rounding = 1e-9 * max(1.0, abs(threshold))
    tolerance = 0.0
    if n > 1 and np.sum(np.abs(target - threshold) <= rounding) > 1:
        tolerance = 2 * np.log(n / (n - 1)) + rounding
    # the rows within the tolerance count as tied here too, as block_arrays reads them
    tied = np.abs(target - threshold) <= tolerance
    below = int(np.sum(target < threshold - tolerance))
    return TrimCut(threshold, (count - below) / int(np.sum(tied)), float(tolerance))


def block_arrays(X_std, target, err, cut, device, rows=None):
    """:func:`training_arrays` for a block after the first: rows whose target is below
    ``cut.threshold`` leave the ELBO, and of those at it, the share ``cut.tie_share``
    chosen by their indices ``rows`` among all rows (default: their positions)."""
    if not isinstance(cut, TrimCut):  # a trainer pickled before ties were shared
        cut = TrimCut(float(cut), 1.0)
    keep = None
    if np.isfinite(cut.threshold):
        rows = np.arange(len(target)) if rows is None else np.asarray(rows)
        left_out = np.modf(rows * TIE_STEP)[0] < cut.tie_share  # if tied at the threshold
        tied = np.abs(target - cut.threshold) <= cut.tolerance
        keep = ((target > cut.threshold + cut.tolerance) | (tied & ~left_out)).astype(float)
    return _as_tensors(X_std, target, err, keep, device)

"""What DiVAE's training loop consumes, made from the validated input: the
standardisation, the density teacher and its targets, the per-sample weights, and
the optional held-out split. Numpy in, torch tensors out; no estimator state."""

import warnings

import numpy as np
import torch
from sklearn.base import clone

from ._knn_density import KNNLogDensity
from ._nn.aligners import precision_weight
from ._torch_utils import as_tensor
from ._validation import training_targets

#: The default density teacher (docs/alignment.md): plain kNN, 30 neighbours.
TEACHER_METHOD, TEACHER_NEIGHBORS = "knn", 30


def standardization(X, enabled):
    """Per-feature ``(center, scale)``: training mean and standard deviation (constant
    columns keep scale 1), or zeros and ones when ``enabled`` is False."""
    n_features = X.shape[1]
    if not enabled:
        return np.zeros(n_features), np.ones(n_features)
    center = X.mean(axis=0)
    std = X.std(axis=0)
    return center, np.where(std > 1e-12 * np.maximum(np.abs(center), 1.0), std, 1.0)


def fit_teacher(density, X_std, n_components, seed):
    """Fit ``density`` (``None``: the default kNN teacher on ``n_components`` PCA
    dimensions, capped by the data) on the standardised training data."""
    if density is None:
        n_dim = min(n_components, X_std.shape[1], X_std.shape[0])
        density = KNNLogDensity(
            TEACHER_NEIGHBORS, method=TEACHER_METHOD, n_components=n_dim, random_state=seed
        )
    else:
        density = clone(density)
    with warnings.catch_warnings():
        # Small data: the neighbour count is clamped, which is expected here.
        warnings.filterwarnings("ignore", message="n_neighbors .* is not smaller")
        return density.fit(X_std)


def teacher_targets(density, X_std):
    """The teacher's training log-densities and errors; a clear error if not usable."""
    target, err = training_targets(density, X_std)
    if not (np.isfinite(target).all() and np.isfinite(err).all() and (err > 0).all()):
        raise ValueError(
            "the density estimator returned non-finite log-densities or errors "
            "on the training data; check its settings (e.g. a KernelDensity bandwidth)."
        )
    return target, err


def training_arrays(X, target, err, trim_fraction, device):
    """``(X, target, precision weight, elbo_weight)`` as tensors on ``device``;
    ``elbo_weight`` is 0 for the ``trim_fraction`` lowest targets, ``None`` without trimming."""
    weight = precision_weight(torch.tensor(err)).numpy()
    arrays = [as_tensor(a, device=device) for a in (X, target, weight)]
    elbo_weight = None
    if trim_fraction > 0:
        keep = (target > np.quantile(target, trim_fraction)).astype(float)
        elbo_weight = as_tensor(keep, device=device)
    return (*arrays, elbo_weight)


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

"""What :class:`~skdivae.KNNLogDensity` prepares before it estimates a density: the
projection into the teacher's space, the rows it indexes, the floor on neighbour
distances (duplicated rows) and a TWO-NN dimension it can use."""

import warnings
from numbers import Integral

import numpy as np
from sklearn.decomposition import PCA
from sklearn.utils import check_random_state

from ._density_math import floor_distances


def fit_projection(Z, n_components, whiten, random_state):
    """The fitted PCA that ``n_components`` asks for on the float64 rows ``Z``, or
    ``None`` (no projection). An int beyond what the data allow is lowered with a
    warning, and with ``whiten`` components without spread are dropped; ``whiten``
    without ``n_components`` warns that it does nothing."""
    if whiten and n_components is None:
        warnings.warn("KNNLogDensity(whiten=True) has no effect without n_components: "
                      "only the PCA whitens. Set n_components (e.g. a float such as "
                      "0.99 to keep that share of the variance).", UserWarning)
    if n_components is None:
        return None
    n_samples, n_features = Z.shape
    # Whitening divides by each component's spread: centred data have rank
    # n_samples - 1, and a component beyond it (spread ~1e-16) would send every
    # new row infinitely far away.
    limit = min(n_samples - 1 if whiten else n_samples, n_features)
    if isinstance(n_components, Integral) and n_components > limit:
        warnings.warn(
            f"n_components={n_components} exceeds min(n_samples"
            f"{' - 1' if whiten else ''}, n_features)={limit}; using {limit}.",
            UserWarning,
        )
        n_components = limit
    with np.errstate(divide="ignore", invalid="ignore"):
        # Constant rows: PCA's explained-variance ratios divide 0 by 0, which the
        # projection does not use; numpy's warnings would only alarm the user.
        pca = PCA(n_components=n_components, whiten=whiten, random_state=random_state).fit(Z)
    return _without_empty_components(pca, Z, random_state) if whiten else pca


def _without_empty_components(pca, Z, random_state):
    """``pca`` refitted without the components whose spread is rounding noise (below
    1e-10 of the largest variance: collinear features, fewer rows than components),
    with a warning: whitening would divide new rows' coordinates on them by ~1e-8."""
    variance = pca.explained_variance_
    keep = int(np.sum(variance > 1e-10 * variance[0])) if variance.size else 0
    if keep == variance.size or keep == 0:
        return pca
    warnings.warn(
        f"whiten=True: {variance.size - keep} of the {variance.size} principal components "
        "have no spread (collinear features or too few rows); keeping "
        f"n_components={keep}.",
        UserWarning,
    )
    return PCA(n_components=keep, whiten=True, random_state=random_state).fit(Z)


def rows_to_index(n_samples, max_samples, random_state):
    """Sorted rows to index, or ``None`` for all of them (``max_samples``)."""
    if max_samples is None:
        return None
    if isinstance(max_samples, Integral):
        n_index = max_samples
    else:
        n_index = max(3, int(max_samples * n_samples))
    if n_index >= n_samples:
        return None
    rng = check_random_state(random_state)
    return np.sort(rng.choice(n_samples, size=n_index, replace=False))


def distance_floor(Z_index, dist):
    """The smallest neighbour distance used (duplicated rows are at distance 0):
    ``1e-9`` of the indexed rows' spread, capped at a thousandth of the median positive
    distance to a first neighbour (``dist``, leave-one-out), so that one far-off row
    (whose square inflates the spread) cannot lift the floor above ordinary neighbour
    distances and give every row the same density."""
    spread = float(np.sqrt(np.mean(np.var(Z_index, axis=0)))) if Z_index.size else 0.0
    first = dist[:, 0] if dist.size else dist.reshape(-1)
    positive = first[first > 0]
    cap = 1e-3 * float(np.median(positive)) if positive.size else np.inf
    return min(floor_distances(np.zeros(1), spread)[0], cap)


def clamped_twonn(dim, n_components):
    """The TWO-NN dimension as estimated, unless it is far outside what the space
    allows (above twice its dimension ``n_components``, or below 0.5): then, with a
    warning, clamped to ``[1, n_components]``. Many tied or duplicated distances make
    the ratio of the two nearest ones degenerate (a lattice, repeated rows) and the
    estimate meaningless. A noisy estimate a little above the space's dimension, common
    when the data fill the space, is kept as the paper's method (DADApy) keeps it."""
    upper = float(max(n_components, 1))
    if 0.5 <= dim <= 2 * upper:
        return dim
    if np.isnan(dim):  # every ratio tied: the space's dimension, as intrinsic_dim=None
        clamped, came_out = upper, "undefined (the two nearest distances tie)"
    else:
        clamped, came_out = min(max(dim, 1.0), upper), f"{dim:.3g}"
    warnings.warn(
        f"the TWO-NN intrinsic dimension came out as {came_out}, far outside [1, "
        f"{upper:g}] (the dimension of the space it was estimated in); using "
        f"{clamped:g}. Tied or repeated distances (a grid, duplicated rows) make it "
        "unreliable: pass intrinsic_dim as a number.",
        UserWarning,
    )
    return clamped

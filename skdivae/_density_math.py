"""Nearest-neighbour log-density estimators: plain kNN, PAk and TWO-NN.

Pure numpy/scipy functions on neighbour-distance matrices. They hold no
state and know nothing of scikit-learn; :class:`skdivae.KNNLogDensity` wires
them to PCA and :class:`~sklearn.neighbors.NearestNeighbors`.

Conventions: ``dist`` has shape ``(n, K)`` and ``dist[:, j]`` is the distance
to the ``(j + 1)``-th neighbour, the point itself excluded. ``n_ref`` is the
number of reference points the neighbours were drawn from (``N - 1`` for
leave-one-out values on the training set, ``N`` for new queries).
"""

import numpy as np
from scipy.special import gammaln
from scipy.stats import chi2

#: Likelihood-ratio threshold of the PAk k* test (chi-square, 1 dof, alpha=1e-6).
PAK_THRESHOLD = float(chi2.isf(1e-6, 1))  # 23.928...

_MAX_NEWTON_ITER = 100
_NEWTON_TOL = 1e-8
_MAX_SLOPE = 1e3
#: Neighbour distances closer than this, relative to the larger, are ties (rounding noise):
#: their shell is empty, as for an exact tie, not a sliver of 1e-16 that PAk's fit would
#: chase to an extreme slope.
_TIE_RTOL = 1e-10


def log_unit_ball_volume(d):
    """Log-volume of the unit ball in ``d`` dimensions, ``log(pi^(d/2) / Gamma(d/2 + 1))``."""
    d = float(d)
    return 0.5 * d * np.log(np.pi) - gammaln(0.5 * d + 1.0)


def floor_distances(dist, scale):
    """Replace zero distances (duplicated rows) by a tiny positive value.

    ``scale`` is a typical length of the data; the floor is ``1e-9 * scale``
    so that duplicates get a very high but finite log-density.
    """
    floor = 1e-9 * scale if scale > 0 else 1e-12
    return np.maximum(dist, floor)


def knn_log_density(dist, k, n_ref, d):
    """kNN estimate ``log k - log n_ref - log V_d - d log r_k`` and its error ``1/sqrt(k)``.

    Parameters
    ----------
    dist : ndarray of shape (n, K), K >= k
        Sorted neighbour distances, positive.
    k : int
        Neighbour whose distance sets the ball.
    n_ref : int
        Number of reference points.
    d : float
        Dimension used for the ball volume.

    Returns
    -------
    log_density, log_density_err : ndarray of shape (n,)
    """
    log_r = np.log(dist[:, k - 1])
    log_density = np.log(k) - np.log(n_ref) - log_unit_ball_volume(d) - d * log_r
    return log_density, np.full(dist.shape[0], 1.0 / np.sqrt(k))


def pak_kstar(dist, neigh_dist_of_neighbours, d, threshold=PAK_THRESHOLD):
    """Adaptive neighbourhood size k* of PAk (Rodriguez et al., 2018).

    For each point, grow ``j = 4, 5, ...`` and compare the volume of the ball
    holding ``j - 1`` neighbours of the point with that of its ``j``-th
    neighbour; stop at the first ``j`` where the likelihood-ratio statistic
    exceeds ``threshold`` and keep ``k* = j - 1``. If no test fails,
    ``k* = K``.

    Parameters
    ----------
    dist : ndarray of shape (n, K)
        Sorted neighbour distances of the points being estimated.
    neigh_dist_of_neighbours : callable
        ``f(j) -> ndarray (n,)``: distance from each point's ``j``-th
        neighbour (1-based) to that neighbour's own ``(j - 1)``-th neighbour.
    d : float
        Dimension used for the volumes.

    Returns
    -------
    kstar : ndarray of shape (n,), int
    """
    n, max_k = dist.shape
    kstar = np.full(n, max_k, dtype=np.intp)
    undecided = np.ones(n, dtype=bool)
    for j in range(4, max_k + 1):
        ksel = j - 1
        # log of volume ratio; the unit-ball constant cancels.
        log_vi = d * np.log(dist[:, ksel - 1])
        log_vj = d * np.log(neigh_dist_of_neighbours(j))
        # -2 k (log vi + log vj - 2 log(vi + vj) + log 4), written stably.
        stat = -2.0 * ksel * (
            log_vi + log_vj - 2.0 * np.logaddexp(log_vi, log_vj) + np.log(4.0)
        )
        failed = undecided & (stat > threshold)
        kstar[failed] = j - 1
        undecided &= ~failed
        if not undecided.any():
            break
    return kstar


def pak_log_density(dist, kstar, n_ref, d, return_k=False):
    """PAk estimate: log-linear density over the k* shells fitted by maximum likelihood.

    With shells ``l = 1..k*`` of volume ``v_l`` between consecutive
    neighbours, the log-likelihood ``k F + a k(k+1)/2 - sum_l v_l exp(F + a l)``
    is maximised by vectorised Newton steps over all points at once;
    ``exp(F) / n_ref`` is the density at the point. Points where the fit does
    not converge (degenerate shells, e.g. many ties) fall back to the kNN
    estimate at ``k*``.

    Returns
    -------
    log_density, log_density_err : ndarray of shape (n,)
        The error is ``sqrt((4 k* + 2) / ((k* - 1) k*))``.
    k_used : ndarray of shape (n,), int
        With ``return_k``: the neighbourhood each estimate used (``K`` for a
        point mass, below; ``k*`` elsewhere).
    """
    n, max_k = dist.shape
    rows = np.arange(n)
    log_rk = np.log(dist[rows, kstar - 1])
    # Shell volumes relative to the k*-ball: w_l = (r_l/r_k)^d - (r_{l-1}/r_k)^d.
    ratio_pow = np.exp(d * (np.log(dist) - log_rk[:, None]))
    ratio_pow = np.minimum(ratio_pow, 1.0)
    shell = np.diff(ratio_pow, axis=1, prepend=0.0)
    tied = np.diff(dist, axis=1, prepend=0.0) <= _TIE_RTOL * dist
    index = np.arange(1, max_k + 1, dtype=float)
    mask = (index[None, :] <= kstar[:, None]) & ~tied
    shell = np.where(mask, np.maximum(shell, 0.0), 0.0)

    k = kstar.astype(float)
    grad_f_target = k
    grad_a_target = 0.5 * k * (k + 1.0)
    f = np.log(k)  # start from the kNN estimate, flat profile
    a = np.zeros(n)
    active = np.ones(n, dtype=bool)
    converged = np.zeros(n, dtype=bool)
    for _ in range(_MAX_NEWTON_ITER):
        idx = np.flatnonzero(active)
        if idx.size == 0:
            break
        sh, ff, aa = shell[idx], f[idx], a[idx]
        e = sh * np.exp(np.clip(ff[:, None] + aa[:, None] * index[None, :], -700, 700))
        s0 = e.sum(axis=1)
        s1 = e @ index
        s2 = e @ (index * index)
        g_f = grad_f_target[idx] - s0
        g_a = grad_a_target[idx] - s1
        # Newton step on the concave log-likelihood: solve H delta = -g, H = -[[s0, s1], [s1, s2]].
        det = s0 * s2 - s1 * s1
        det = np.where(det > 1e-300, det, np.nan)
        step_f = (s2 * g_f - s1 * g_a) / det
        step_a = (s0 * g_a - s1 * g_f) / det
        # Damp large steps; the problem is concave, so damping only slows convergence.
        scale = np.maximum(1.0, np.maximum(np.abs(step_f), 10 * np.abs(step_a)) / 2.0)
        f[idx] = ff + step_f / scale
        a[idx] = np.clip(aa + step_a / scale, -_MAX_SLOPE, _MAX_SLOPE)
        done = (np.abs(step_f) < _NEWTON_TOL) & (np.abs(step_a) < _NEWTON_TOL)
        bad = ~np.isfinite(step_f) | ~np.isfinite(step_a)
        converged[idx[done & ~bad]] = True
        active[idx[done | bad]] = False
    ok = converged & np.isfinite(f)
    knn_f = np.log(k)
    f = np.where(ok, f, knn_f)

    log_density = f - log_rk * d - log_unit_ball_volume(d) - np.log(n_ref)
    with np.errstate(divide="ignore"):
        err = np.sqrt((4.0 * k + 2.0) / np.maximum((k - 1.0) * k, 1.0))
    # A k*-ball whose neighbours all tie with the first (copies of the row, whose distances
    # sit at the floor) holds no profile and no volume: k* is meaningless there, so take
    # the kNN estimate with every neighbour, as method="knn" would.
    point_mass = ~ok & (dist[rows, kstar - 1] <= dist[:, 0] * (1.0 + _TIE_RTOL))
    if point_mass.any():
        knn_all, knn_err = knn_log_density(dist[point_mass], max_k, n_ref, d)
        log_density[point_mass], err[point_mass] = knn_all, knn_err
    if return_k:
        return log_density, err, np.where(point_mass, max_k, kstar).astype(np.intp)
    return log_density, err


def twonn_dimension(r1, r2, fraction=0.9):
    """TWO-NN intrinsic dimension (Facco et al., 2017).

    Fits ``-log(1 - F(mu)) = d log(mu)`` through the origin on the
    ``fraction`` smallest ratios ``mu = r2 / r1``.

    Parameters
    ----------
    r1, r2 : ndarray of shape (n,)
        Distances to the first and second neighbours, positive.
    fraction : float
        Share of the smallest ratios kept for the fit.

    Returns
    -------
    d : float
        NaN where every kept ratio is 1 (tied distances: a lattice, repeated rows).
    """
    mu = np.sort(r2 / r1)
    n = mu.size
    n_fit = max(int(np.floor(n * fraction)), 1)
    x = np.log(mu[:n_fit])
    y = -np.log1p(-np.arange(1, n_fit + 1) / n)
    denom = float(x @ x)
    if denom <= 0 or not np.isfinite(denom):
        return float("nan")  # every kept ratio is 1 (ties): no dimension can be read
    return float((x @ y) / denom)

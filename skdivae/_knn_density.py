"""KNNLogDensity: the density teacher rho of DiVAE, as a scikit-learn transformer."""

import warnings
from numbers import Integral, Real

import numpy as np
from sklearn.base import BaseEstimator, TransformerMixin, _fit_context
from sklearn.neighbors import NearestNeighbors
from sklearn.utils.validation import _check_feature_names_in, check_is_fitted

from ._density_math import (
    knn_log_density,
    pak_kstar,
    pak_log_density,
    twonn_dimension,
)
from ._knn_preparation import clamped_twonn, distance_floor, fit_projection, rows_to_index
from ._validation import Interval, RealNotInt, StrOptions, validate_real

#: Scoring works in chunks of rows whose widest intermediate holds about this many
#: numbers (8 MiB in float64), as DiVAE's scoring does.
CHUNK_ELEMENTS = 2**20


#: Magnitudes whose squared distances stay representable in float64.
MAX_ABS_VALUE, MIN_ABS_VALUE = 1e150, 1e-150


#: The share of indexed rows with ``n_neighbors`` exact copies above which fit warns.
COPIES_WARNING_SHARE = 0.01


def check_magnitude(X, fitting=True):
    """The ValueError for values whose squared distances overflow float64 (a query row that
    far from every training row would get ``-inf``), or, in ``fit`` (``fitting``), underflow
    it (training rows that close together would all tie)."""
    peak = float(np.max(np.abs(X))) if X.size else 0.0
    if fitting and (peak > MAX_ABS_VALUE or 0 < peak < MIN_ABS_VALUE):
        raise ValueError(
            f"X has values of magnitude up to {peak:.3g}; squared distances between rows "
            f"overflow or underflow float64 outside [{MIN_ABS_VALUE:.0e}, "
            f"{MAX_ABS_VALUE:.0e}]. Multiply X by a constant (or scale it first)."
        )
    if peak > MAX_ABS_VALUE:
        raise ValueError(
            f"X has values of magnitude up to {peak:.3g}; squared distances to the training "
            f"rows overflow float64 beyond {MAX_ABS_VALUE:.0e}. Scale X as the training data "
            "were scaled.")


class DuplicateRowsWarning(UserWarning):
    """Many rows have at least ``n_neighbors`` exact copies: their log-density is set by
    the distance floor, not estimated."""


def warn_copies_at_floor(at_floor, log_density, n_neighbors):
    """Warn when at least :data:`COPIES_WARNING_SHARE` of the indexed rows have their
    ``n_neighbors``-th neighbour at distance 0 (``at_floor``)."""
    share = float(np.mean(at_floor)) if at_floor.size else 0.0
    if share < COPIES_WARNING_SHARE:
        return
    excess = ""
    if (~at_floor).any():
        gap = float(np.median(log_density[at_floor]) - np.median(log_density[~at_floor]))
        excess = f", about {gap:.0f} nats above the other rows' median"
    warnings.warn(
        f"{share:.0%} of the rows have at least n_neighbors={n_neighbors} exact copies (as "
        "repeated rows of discrete data do): their k-th neighbour is at distance 0, so "
        f"their log-density is set by the distance floor{excess}. They rank as the densest "
        "rows, but their values are not density estimates; more neighbours than a row has "
        "copies avoids it.", DuplicateRowsWarning, stacklevel=5)


class KNNLogDensity(TransformerMixin, BaseEstimator):
    """Nearest-neighbour log-density estimate with per-point standard errors.

    The data are optionally projected with PCA; in that space the
    log-density of every training point is estimated with the point itself
    left out, either with the plain kNN estimator or with PAk, the
    point-adaptive estimator of Rodriguez et al. (2018). Values are absolute
    log-densities (nats) in the projected space.

    Parameters
    ----------
    n_neighbors : int, default=30
        For ``method="knn"``, the neighbour whose distance sets the ball.
        For ``method="pak"``, the largest neighbourhood the adaptive k* may
        reach. Clamped to ``n_samples - 1`` with a warning.
    method : {"knn", "pak"}, default="knn"
        ``"knn"``: ``log k - log(N-1) - log V_d - d log r_k`` with error
        ``1/sqrt(k)``. ``"pak"``: k* chosen per point by a likelihood-ratio
        test of constant density, then a log-linear maximum-likelihood fit
        over the k* shells, error ``sqrt((4k*+2)/((k*-1)k*))`` (the authors'
        choice). kNN is the default: on the ADBench development sets it is
        the better detector and the better alignment target for DiVAE
        (``docs/results/teacher.md``, ``docs/results/alignment_diagnosis.md``).
    n_components : int, float or None, default=None
        PCA projection applied before the estimate, with :class:`PCA`'s
        meaning (a float in (0, 1) keeps that share of variance). ``None``
        estimates in the input space. An int larger than the data allow is
        clamped with a warning.
    intrinsic_dim : None, "twonn" or float, default=None
        Dimension ``d`` used for the ball volumes. ``None``: the dimension of
        the (projected) space. ``"twonn"``: estimated by TWO-NN on the 90%
        smallest neighbour-distance ratios.
    whiten : bool, default=False
        Passed to :class:`PCA`; without ``n_components`` there is no PCA, and
        ``whiten=True`` is ignored with a warning.
    algorithm : {"auto", "ball_tree", "kd_tree", "brute"}, default="auto"
        Passed to :class:`~sklearn.neighbors.NearestNeighbors`.
    leaf_size : int, default=30
        Passed to :class:`~sklearn.neighbors.NearestNeighbors`.
    max_samples : int, float or None, default=None
        Size of the reference set. ``None`` indexes every training row. An
        int ``m`` (or a float share of the rows) indexes a random subsample
        of at most ``m`` rows, drawn without replacement: the PCA is still
        fitted on every row, each indexed row gets its leave-one-out estimate
        among the other ``m - 1``, and every other training row is a query
        against the ``m`` indexed rows. ``log_density_`` then still covers all
        rows, at the cost of one neighbour query per row against a smaller
        tree, and the estimate is that of an ``m``-point sample (wider balls
        for the same ``n_neighbors``). :class:`~skdivae.DiVAE`'s default
        teacher uses 100 000, which keeps a million-row fit to minutes
        (``docs/results/performance.md``).
    n_jobs : int, default=None
        Parallel jobs of the neighbour search.
    random_state : int, RandomState instance or None, default=None
        Seeds the randomized PCA solver when it is used, and the subsample
        of ``max_samples``.

    Attributes
    ----------
    log_density_ : ndarray of shape (n_samples,)
        Leave-one-out log-density of each training point.
    log_density_err_ : ndarray of shape (n_samples,)
        Standard error of ``log_density_``.
    kstar_ : ndarray of shape (n_samples,)
        Neighbourhood size used for each training point.
    n_neighbors_ : int
        ``n_neighbors`` after clamping.
    n_components_ : int
        Dimension of the space the estimate lives in.
    intrinsic_dim_ : float
        Dimension used for the ball volumes (a TWO-NN estimate far outside
        ``[1, n_components_]``, above twice the space's dimension or below 0.5, is
        clamped into it with a warning).
    method_ : {"knn", "pak"}
        The estimator that scoring uses: ``method`` at fit (changing it with
        ``set_params`` takes a refit).
    pca_ : PCA or None
        The fitted projection, if ``n_components`` is set.
    nn_ : NearestNeighbors
        Neighbour index over the projected training points (the subsample,
        with ``max_samples``).
    sample_indices_ : ndarray of shape (n_indexed,) or None
        Training rows held by ``nn_``, in increasing order; ``None`` when
        every row is indexed.
    n_features_in_ : int
        Number of features seen in ``fit``.
    feature_names_in_ : ndarray of shape (n_features_in_,)
        Names of features seen in ``fit``, when they are all strings.

    See Also
    --------
    sklearn.neighbors.KernelDensity : Kernel density estimate, also usable as
        the ``density`` of :class:`~skdivae.DiVAE`.

    Notes
    -----
    ``transform`` and ``score_samples`` treat their input as new points: a
    training row passed to them counts itself as a neighbour, and so does
    ``fit_transform(X)``. The leave-one-out values of the training rows are in
    ``log_density_``.

    PAk (``method="pak"``) assumes continuous data. Distances equal up to
    rounding count as ties, and a row whose nearest neighbours are all copies
    of it gets the kNN estimate with every neighbour; but on rounded or
    discrete features (a grid of values) its fitted profiles are unreliable:
    prefer ``method="knn"`` there.

    A row with at least ``n_neighbors`` exact copies (repeated rows of binary,
    one-hot or rounded data) has its k-th neighbour at distance 0, which is
    raised to a tiny floor: its log-density is then tens of nats above the
    other rows' (about ``d`` times 20 in ``d`` dimensions), a rank (densest)
    rather than an estimate. ``fit`` warns (:class:`DuplicateRowsWarning`)
    when 1 % of the rows or more are so; more neighbours than a row has
    copies avoids it. With ``intrinsic_dim="twonn"`` rows with an exact copy
    are left out of the TWO-NN fit, as DADApy does.

    Examples
    --------
    >>> import numpy as np
    >>> from skdivae import KNNLogDensity
    >>> X = np.random.default_rng(0).normal(size=(2000, 2))
    >>> est = KNNLogDensity(n_neighbors=50, method="knn").fit(X)
    >>> est.log_density_.shape
    (2000,)
    >>> true = -np.log(2 * np.pi) - 0.5 * (X ** 2).sum(axis=1)
    >>> bool(np.median(np.abs(est.log_density_ - true)) < 0.2)
    True
    >>> est.transform(X[:3]).shape
    (3, 2)
    """

    _parameter_constraints: dict = {
        "n_neighbors": [Interval(Integral, 1, None, closed="left")],
        "method": [StrOptions({"knn", "pak"})],
        "n_components": [
            None,
            Interval(Integral, 1, None, closed="left"),
            Interval(RealNotInt, 0, 1, closed="neither"),
        ],
        "intrinsic_dim": [
            None,
            StrOptions({"twonn"}),
            Interval(Real, 0, None, closed="neither"),
        ],
        "whiten": ["boolean"],
        "algorithm": [StrOptions({"auto", "ball_tree", "kd_tree", "brute"})],
        "leaf_size": [Interval(Integral, 1, None, closed="left")],
        "max_samples": [
            None,
            Interval(Integral, 3, None, closed="left"),
            Interval(RealNotInt, 0, 1, closed="right"),
        ],
        "n_jobs": [None, Integral],
        "random_state": ["random_state"],
    }

    def __init__(
        self,
        n_neighbors=30,
        *,
        method="knn",
        n_components=None,
        intrinsic_dim=None,
        whiten=False,
        algorithm="auto",
        leaf_size=30,
        max_samples=None,
        n_jobs=None,
        random_state=None,
    ):
        self.n_neighbors = n_neighbors
        self.method = method
        self.n_components = n_components
        self.intrinsic_dim = intrinsic_dim
        self.whiten = whiten
        self.algorithm = algorithm
        self.leaf_size = leaf_size
        self.max_samples = max_samples
        self.n_jobs = n_jobs
        self.random_state = random_state

    def fit(self, X, y=None):
        """Fit the projection and neighbour index; estimate the training densities.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Training data; at least 3 rows, finite.
        y : Ignored
            Not used, present for API consistency.

        Returns
        -------
        self : KNNLogDensity
            The fitted estimator. A fit that fails leaves it unfitted, also when
            it had been fitted before.
        """
        try:
            return self._validated_fit(X)
        except BaseException:
            self._forget_fit()
            raise

    def _forget_fit(self):
        """Remove every fitted attribute, so that a refit keeps nothing of an earlier fit
        (``_fit_dist`` of a ``method="pak"`` fit under a later ``"knn"`` one) and a failed
        fit leaves an unfitted estimator."""
        fitted = [k for k in vars(self) if k.endswith("_") and not k.startswith("__")]
        for name in fitted + [k for k in ("_fit_dist", "_dist_floor") if k in vars(self)]:
            delattr(self, name)

    @_fit_context(prefer_skip_nested_validation=True)
    def _validated_fit(self, X):
        self._forget_fit()
        X = validate_real(self, X, ensure_min_samples=3)
        n_samples = X.shape[0]
        check_magnitude(X)
        if self.method == "pak" and self.n_neighbors < 2:
            raise ValueError(
                "method='pak' needs n_neighbors >= 2 to fit a density profile; "
                f"got n_neighbors={self.n_neighbors}."
            )

        Z = X.astype(np.float64, copy=False)
        self.pca_ = fit_projection(Z, self.n_components, self.whiten, self.random_state)
        if self.pca_ is not None:  # an array whatever scikit-learn's output setting
            Z = np.asarray(self.pca_.transform(Z))
        self.n_components_ = Z.shape[1]

        self.sample_indices_ = rows_to_index(n_samples, self.max_samples, self.random_state)
        Z_index = Z if self.sample_indices_ is None else Z[self.sample_indices_]
        n_index = Z_index.shape[0]
        self.n_neighbors_ = self.n_neighbors
        if self.n_neighbors > n_index - 1:
            warnings.warn(
                f"n_neighbors ({self.n_neighbors}) is not smaller than the number of "
                f"samples ({n_index}"
                + ("" if self.sample_indices_ is None else
                   f" indexed, of {n_samples}, by max_samples={self.max_samples!r}")
                + f"); using n_neighbors={n_index - 1}.",
                UserWarning,
            )
            self.n_neighbors_ = n_index - 1

        self.nn_ = NearestNeighbors(
            n_neighbors=max(self.n_neighbors_, 2),
            algorithm=self.algorithm,
            leaf_size=self.leaf_size,
            n_jobs=self.n_jobs,
        ).fit(Z_index)
        dist, ind = self.nn_.kneighbors()  # leave-one-out: each point excludes itself
        self._dist_floor = distance_floor(Z_index, dist)
        # a row with an exact copy has no TWO-NN ratio (DADApy leaves such rows out too)
        distinct = dist[:, 0] > 0
        copies_at_k = dist[:, self.n_neighbors_ - 1] <= 0
        dist = np.maximum(dist, self._dist_floor)

        if self.intrinsic_dim is None:
            self.intrinsic_dim_ = float(self.n_components_)
        elif self.intrinsic_dim == "twonn":
            rows = distinct if distinct.sum() >= 3 else slice(None)
            self.intrinsic_dim_ = clamped_twonn(
                twonn_dimension(dist[rows, 0], dist[rows, 1]), self.n_components_)
        else:
            self.intrinsic_dim_ = float(self.intrinsic_dim)

        dist, ind = dist[:, : self.n_neighbors_], ind[:, : self.n_neighbors_]
        self.method_ = self.method  # what scoring uses, whatever set_params says later
        if self.method == "pak":
            self._fit_dist = dist
        estimate = self._estimate(dist, ind, n_ref=n_index - 1)
        warn_copies_at_floor(copies_at_k, estimate[0], self.n_neighbors_)  # (indexed rows)
        if self.sample_indices_ is not None:
            estimate = self._with_queried_rows(Z, estimate)
        self.log_density_, self.log_density_err_, self.kstar_ = estimate
        return self

    def _with_queried_rows(self, Z, indexed):
        """Training estimates for every row: ``indexed`` (leave-one-out, for the indexed
        rows) and a query against the index for the others."""
        n_samples = Z.shape[0]
        others = np.ones(n_samples, dtype=bool)
        others[self.sample_indices_] = False
        dist, ind = self.nn_.kneighbors(Z[others], n_neighbors=self.n_neighbors_)
        queried = self._estimate(
            np.maximum(dist, self._dist_floor), ind, n_ref=self.nn_.n_samples_fit_
        )
        out = []
        for mine, theirs in zip(indexed, queried):
            full = np.empty(n_samples, dtype=np.result_type(mine, theirs))
            full[self.sample_indices_], full[others] = mine, theirs
            out.append(full)
        return tuple(out)

    def _estimate(self, dist, ind, n_ref):
        """Log-density, error and k used, from neighbour distances/indices into the training set."""
        d = self.intrinsic_dim_
        # (a model saved before method_ existed was scored with its method parameter)
        if getattr(self, "method_", self.method) == "knn":
            k = self.n_neighbors_
            log_density, err = knn_log_density(dist, k, n_ref, d)
            return log_density, err, np.full(dist.shape[0], k, dtype=np.intp)
        train_dist = self._fit_dist

        def neighbours_ball(j):
            return train_dist[ind[:, j - 1], j - 2]

        kstar = pak_kstar(dist, neighbours_ball, d)
        return pak_log_density(dist, kstar, n_ref, d, return_k=True)

    def _log_density(self, X):
        """Log-density and error of the rows of ``X``, in chunks of rows whose widest
        intermediate (the float64 copy, the projection, the neighbour distances and
        indices) holds about ``CHUNK_ELEMENTS`` numbers, so memory stays bounded
        whatever the number of rows; each row's values do not depend on the chunking."""
        check_magnitude(X, fitting=False)
        width = max(X.shape[1], self.n_neighbors_, 1)
        step = max(1, CHUNK_ELEMENTS // width)
        log_density, err = np.empty(X.shape[0]), np.empty(X.shape[0])
        for start in range(0, X.shape[0], step):
            rows = slice(start, start + step)
            Z = X[rows].astype(np.float64, copy=False)
            if self.pca_ is not None:
                Z = np.asarray(self.pca_.transform(Z))
            dist, ind = self.nn_.kneighbors(Z, n_neighbors=self.n_neighbors_)
            dist = np.maximum(dist, self._dist_floor)
            log_density[rows], err[rows], _ = self._estimate(dist, ind, n_ref=self.nn_.n_samples_fit_)
        return log_density, err

    def transform(self, X):
        """Log-density and its standard error at new points.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Query points.

        Returns
        -------
        Xt : ndarray of shape (n_samples, 2)
            Columns ``log_density`` and ``log_density_err``.
        """
        check_is_fitted(self)
        X = validate_real(self, X, reset=False)
        return np.column_stack(self._log_density(X))

    def score_samples(self, X):
        """Log-density at new points (higher means denser).

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Query points.

        Returns
        -------
        log_density : ndarray of shape (n_samples,)
        """
        check_is_fitted(self)
        X = validate_real(self, X, reset=False)
        return self._log_density(X)[0]

    def score(self, X, y=None):
        """Total log-density of ``X`` (the sum of :meth:`score_samples`), as scikit-learn's
        ``KernelDensity.score``: what a search without ``scoring`` maximises, i.e. the
        held-out log-likelihood.

        Do not tune ``n_neighbors`` by this score: the kNN log-density is biased
        upwards by about ``log k - digamma(k)`` (0.58 nats at ``k = 1``, 0.02 at
        30) and is not normalised exactly, so the held-out sum prefers the
        smallest ``k``, the noisiest estimate. Never choose ``n_components``,
        ``intrinsic_dim`` or ``whiten`` by it either: they change the space the
        density lives in, and log-densities in spaces of different dimension or
        scale have different units. A search needs labels and, for example,
        ``scoring=skdivae.model_selection.anomaly_roc_auc``; without them keep
        the defaults.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Query points.
        y : None
            Ignored, present for API consistency.

        Returns
        -------
        log_likelihood : float

        Examples
        --------
        >>> import numpy as np
        >>> from skdivae import KNNLogDensity
        >>> rng = np.random.default_rng(0)
        >>> X, X_new = rng.normal(size=(300, 2)), rng.normal(size=(100, 2))
        >>> bool(np.isfinite(KNNLogDensity(30).fit(X).score(X_new)))
        True
        """
        return float(np.sum(self.score_samples(X)))

    def get_feature_names_out(self, input_features=None):
        """Names of the two output columns.

        Parameters
        ----------
        input_features : array-like of str or None, default=None
            Ignored apart from validation.

        Returns
        -------
        feature_names_out : ndarray of str objects
            ``["log_density", "log_density_err"]``.
        """
        check_is_fitted(self)
        _check_feature_names_in(self, input_features, generate_names=False)
        return np.asarray(["log_density", "log_density_err"], dtype=object)

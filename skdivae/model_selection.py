"""Model selection for DiVAE: choosing the alignment weight without labels, and a ROC AUC
scorer that reads anomaly labels in either convention.

A held-out ELBO (``DiVAE.score``) tends to prefer ``alignment_weight=0``
(9 of 16 runs in ``docs/results/model_selection.md``): the alignment term is a
constraint the ELBO does not reward. :func:`choose_alignment_weight` judges
fits of several weights on held-out rows by how well their log-prior agrees
with the data-space density, within a budget of lost ELBO, and keeps the fit it
judged (``docs/results/holdout_weight_choice.md``);
:func:`density_agreement_score` is a scorer for searches, and picks the largest
weight on most data (``docs/results/model_selection.md``).
"""

import warnings

import numpy as np
from scipy.stats import spearmanr
from sklearn.metrics import roc_auc_score
from sklearn.utils.validation import _num_samples

from ._divae import DiVAE
from ._pipelines import final_step
from ._weight_choice import MIN_ROWS, WeightChoice, choose_alignment_weight

__all__ = ["choose_alignment_weight", "WeightChoice", "density_agreement_score",
           "anomaly_roc_auc", "anomaly_labels"]


def anomaly_labels(y):
    """Boolean "is an anomaly" from labels in either convention.

    ``{0, 1}`` labels follow ADBench and PyOD (1 = anomaly); ``{-1, 1}`` labels
    follow scikit-learn's outlier detectors (-1 = outlier). Booleans mean
    "is an anomaly". Labels that are all 1 fit both conventions and are read
    as 0/1 (every row an anomaly); for -1/+1 labels without an outlier, pass
    ``y == -1`` as booleans.

    Parameters
    ----------
    y : array-like of shape (n_samples,)

    Returns
    -------
    is_anomaly : ndarray of bool, shape (n_samples,)

    Raises
    ------
    ValueError
        If the labels are in neither convention.

    Examples
    --------
    >>> from skdivae.model_selection import anomaly_labels
    >>> anomaly_labels([0, 1, 0]).tolist(), anomaly_labels([1, -1, 1]).tolist()
    ([False, True, False], [False, True, False])
    """
    y = np.asarray(y)
    if y.ndim == 2 and y.shape[1] == 1:  # a column of labels
        y = y.ravel()
    if y.ndim != 1:
        raise ValueError(f"anomaly labels must be a 1-D array, got shape {y.shape}.")
    if y.dtype == bool:
        return y
    try:
        values = set(np.unique(y).tolist())
    except TypeError:  # labels of mixed types cannot be sorted
        values = set(y.tolist())
    if values <= {0, 1}:
        return y == 1
    if values <= {-1, 1}:
        return y == -1
    raise ValueError(
        "anomaly labels must be 0/1 (1 = anomaly, as ADBench and PyOD) or -1/+1 (-1 = "
        f"outlier, as scikit-learn); got the values {sorted(values, key=repr)}."
    )


def anomaly_roc_auc(estimator, X, y):
    """ROC AUC of an outlier detector for labels in either convention (a scorer).

    scikit-learn's ``scoring="roc_auc"`` takes the label 1 as the positive
    class and ranks by ``decision_function`` (higher = more normal), so it is
    right for -1/+1 labels and *inverted* for the 0/1 labels of ADBench and
    PyOD. This scorer reads both (see :func:`anomaly_labels`) and ranks
    anomalies by ``-score_samples``: use it as ``scoring=anomaly_roc_auc``.

    Parameters
    ----------
    estimator : fitted outlier detector with ``score_samples``
    X : array-like of shape (n_samples, n_features)
    y : array-like of shape (n_samples,)
        0/1 (1 = anomaly), -1/+1 (-1 = outlier) or boolean (True = anomaly).

    Returns
    -------
    auc : float
        1.0 when every anomaly scores below every normal row.

    Raises
    ------
    ValueError
        If ``y`` holds only anomalies or only normal rows (ROC AUC is undefined).

    Notes
    -----
    In a search, split with ``cv=StratifiedKFold(n_splits, shuffle=True)``, not
    ``cv=3``: an outlier detector is not a classifier, so ``cv=3`` means an
    unshuffled ``KFold``, and where the anomalies sit together in ``X`` (as in
    ADBench's files) most folds hold none, every setting's mean score is NaN
    and the search keeps the first grid value (scikit-learn warns that scoring
    failed and that the scores are not finite, not that nothing was chosen).
    Stratified folds give each fold its share of anomalies.

    A row whose score is NaN or -inf (a fit that overflowed) counts as the most
    anomalous, as ``predict`` treats it, and +inf as the most normal; if every row
    scores alike that way, the result is 0.5 and a ``RuntimeWarning`` says so.

    Examples
    --------
    >>> import numpy as np
    >>> from sklearn.model_selection import GridSearchCV, StratifiedKFold
    >>> from skdivae import DiVAE
    >>> from skdivae.model_selection import anomaly_roc_auc
    >>> rng = np.random.default_rng(0)
    >>> X = np.vstack([rng.normal(size=(300, 3)), rng.uniform(-6, 6, size=(20, 3))])
    >>> y = np.r_[np.zeros(300), np.ones(20)]  # 1 = anomaly
    >>> search = GridSearchCV(
    ...     DiVAE(max_iter=100, random_state=0), {"alignment_weight": [0.0, 1.0]},
    ...     scoring=anomaly_roc_auc, cv=StratifiedKFold(2, shuffle=True, random_state=0),
    ... ).fit(X, y)
    >>> bool(search.best_score_ > 0.5)
    True
    """
    is_anomaly = anomaly_labels(y)  # (a column of labels is read as roc_auc_score reads it)
    if is_anomaly.ndim != 1 or len(is_anomaly) != _num_samples(X):
        raise ValueError(f"y must hold one label per row of X: y has shape {is_anomaly.shape} "
                         f"and X {_num_samples(X)} rows.")
    if is_anomaly.all() or not is_anomaly.any():
        values = set(np.unique(np.asarray(y)).tolist())
        holds = ("only the label 1 (all anomalies as 0/1 labels, all normal rows as -1/+1 "
                 "labels)" if values == {1} else
                 f"only {'anomalies' if is_anomaly.all() else 'normal rows'}")
        raise ValueError(
            f"anomaly_roc_auc needs both anomalies and normal rows in y, but this y holds "
            f"{holds}. In a search, split with cv=StratifiedKFold(n_splits, shuffle=True, "
            "random_state=0) so that every fold holds both (cv=3 is an unshuffled KFold for "
            "an outlier detector)."
        )
    anomaly = -np.asarray(estimator.score_samples(X), dtype=float)
    # A row whose score overflowed (NaN or -inf) is as anomalous as can be (as predict
    # treats it); +inf is as normal as can be.
    finite = anomaly[np.isfinite(anomaly)]
    top = finite.max() + 1.0 if finite.size else 1.0
    bottom = finite.min() - 1.0 if finite.size else -1.0
    anomaly = np.where(np.isnan(anomaly) | (anomaly == np.inf), top, anomaly)
    anomaly = np.where(anomaly == -np.inf, bottom, anomaly)
    if not finite.size and np.ptp(anomaly) == 0:
        warnings.warn(
            "anomaly_roc_auc: every score is NaN or infinite alike, so no row ranks above "
            "another and the ROC AUC is 0.5 (chance); the detector's fit probably diverged.",
            RuntimeWarning, stacklevel=2,
        )
    return float(roc_auc_score(is_anomaly, anomaly))


def density_agreement_score(estimator, X, y=None):
    """Held-out agreement of a fitted DiVAE with its density teacher (higher is better).

    The mean of two Spearman correlations with the teacher's log-density
    ``rho(x)`` on the held-out rows: that of the log-prior at the posterior
    mean (does alignment carry over to new data?) and that of the ELBO (is
    the generative model still sound, or did a heavy alignment weight break
    it?). Both are rank correlations, so the score is free of units and
    comparable across alignment weights, priors and data sets. It works as
    ``scoring=density_agreement_score`` in ``GridSearchCV``, but it is a
    diagnostic, not a way to choose the weight: to choose it without labels,
    use :func:`choose_alignment_weight` (the one label-free choice that beat
    the fixed weight, ``docs/results/holdout_weight_choice.md``).

    It grows with the alignment weight on most data: on the development
    benchmark, with a 2-D latent space, ``prior="normal"`` and the aligner of the
    time (before ``docs/results/calibration_2d.md`` strengthened it there), it picked the
    largest weight of the grid ``(0, 0.3, 1, 3, 10)`` in 15 of 16 runs, for a
    mean regret of 0.019
    ROC AUC against 0.014 for the held-out ELBO and 0.011 for the fixed
    default weight 1 (``docs/results/model_selection.md``). It is therefore no better
    a pick than the default there; keep the grid's upper end at a weight you
    would accept, and prefer labelled folds when you have them.

    Parameters
    ----------
    estimator : DiVAE or Pipeline ending in a DiVAE
        A model fitted with ``keep_density=True``.
    X : array-like of shape (n_samples, n_features)
        Held-out data.
    y : Ignored

    Returns
    -------
    score : float in [-1, 1]
        -1 (the worst) where a correlation is undefined, as on held-out rows
        that are all the same: such a fit is never preferred in a search.

    Examples
    --------
    >>> import numpy as np
    >>> from sklearn.model_selection import GridSearchCV, KFold
    >>> from skdivae import DiVAE
    >>> from skdivae.model_selection import density_agreement_score
    >>> rng = np.random.default_rng(0)
    >>> X = np.vstack([rng.normal(size=(300, 3)), rng.uniform(-6, 6, size=(20, 3))])
    >>> search = GridSearchCV(
    ...     DiVAE(max_iter=100, keep_density=True, random_state=0),
    ...     {"alignment_weight": [0.0, 1.0]},
    ...     scoring=density_agreement_score, cv=KFold(2, shuffle=True, random_state=0),
    ... ).fit(X)
    >>> sorted(search.best_params_)
    ['alignment_weight']
    """
    model, X = final_step(estimator, X)
    if not isinstance(model, DiVAE):
        raise TypeError(
            "density_agreement_score scores a DiVAE or a Pipeline ending in one, got "
            f"{type(model).__name__}."
        )
    if np.shape(X)[0] < 2:
        raise ValueError(
            f"density_agreement_score needs at least 2 held-out rows to rank, got {np.shape(X)[0]}."
        )
    if np.shape(X)[0] < MIN_ROWS:
        warnings.warn(
            f"density_agreement_score on {np.shape(X)[0]} held-out rows: a rank correlation "
            f"of so few takes only a few values (two rows give -1 or 1), so a search is "
            f"steered by noise; hold out at least {MIN_ROWS} rows per fold.",
            UserWarning, stacklevel=2,
        )
    log_prior, elbo, rho = model._diagnostic_scores(X)
    if rho is None:
        raise ValueError(
            "density_agreement_score needs the fitted density teacher: fit DiVAE with "
            "keep_density=True."
        )
    agree_prior = spearmanr(log_prior, rho)[0]
    agree_elbo = spearmanr(elbo, rho)[0]
    return float(np.nan_to_num(0.5 * (agree_prior + agree_elbo), nan=-1.0))

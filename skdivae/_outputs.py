"""DiVAE's outputs: validating new data, running the fitted network on it in chunks, and
the scores and labels built from that. Mixed into :class:`~skdivae.DiVAE`,
which provides ``module_`` and the parameters."""

import functools

import numpy as np
import torch
from sklearn.utils.validation import check_is_fitted

from ._nn.workspace import Workspace
from ._scoring import COMBINED, SCORES, combine, robust_scale
from ._validation import outside_unit_interval, validate_real
from ._torch_utils import (
    PARALLEL_CHUNK_ROWS,
    available_cpus,
    batched_no_grad,
    chunk_rows,
    parallel_no_grad,
    torch_threads,
)


#: Levels of the summary of the training scores kept at fit (``score_quantiles_``):
#: 0, 0.001, ..., 1. A contamination on this grid gets exactly the threshold a refit
#: would set; between grid points the quantiles are interpolated.
QUANTILE_LEVELS = np.linspace(0.0, 1.0, 1001)

#: ``contamination="auto"``: flag rows below Tukey's lower fence of the training
#: scores, Q1 - FENCE * (Q3 - Q1) (about 0.35 % of a Gaussian sample).
FENCE = 1.5


#: Scores within this share of the threshold's magnitude (at least this much in absolute
#: terms) count as *at* it, hence as inliers: the same row's score can differ in its last
#: bits with the rows scored beside it (the matrix products' summation order), and with
#: repeated training rows the threshold lands exactly on their tied score, so without the
#: margin copies of one row could get different labels.
TIE_TOLERANCE = 1e-9


def threshold_from_quantiles(quantiles, contamination):
    """The threshold that flags a ``contamination`` share of the training rows (or the
    lower Tukey fence for ``"auto"``), from their quantiles at :data:`QUANTILE_LEVELS`,
    lowered by :data:`TIE_TOLERANCE` (relative) so that a tie sits on the inlier side."""
    if isinstance(contamination, str) and contamination == "auto":
        q1, q3 = np.interp([0.25, 0.75], QUANTILE_LEVELS, quantiles)
        value = float(q1 - FENCE * (q3 - q1))
    else:
        value = float(np.interp(contamination, QUANTILE_LEVELS, quantiles))
    return value - TIE_TOLERANCE * max(1.0, abs(value)) if np.isfinite(value) else value


#: The network's methods that give one value per row (a score or a log-density).
PER_ROW = frozenset({"elbo", "elbo_at_mean", "aligned_log_prior", "log_prior_at_mean"})


class OutputsMixin:
    """``score_samples``, ``decision_function``, ``predict`` and ``score`` for a fitted
    DiVAE, and ``_set_offset``, the threshold that fit derives from them. ``transform``
    stays on DiVAE itself, where scikit-learn's ``set_output`` wraps it."""

    def _set_offset(self, X, assign=True):
        """Score the training data with every ``anomaly_score`` (with the scoring threads)
        and keep a summary of each score's distribution there (``score_quantiles_``, one
        row per score in the order of ``SCORES``), from which ``contamination`` sets the
        thresholds: ``offsets_`` (one per score), ``offset_`` (the fitted score's). So
        ``set_params(anomaly_score=...)`` or ``set_params(contamination=...)`` on a
        fitted model thresholds correctly without a refit. Also sets the robust scales
        of the combined scores' parts (``score_center_``, ``score_scale_``). With
        ``assign=False`` only checks that every score of ``X`` is finite (a
        ``FloatingPointError`` otherwise) and keeps the thresholds it has."""
        if getattr(self, "verbose", 0):
            print(f"scoring the {X.shape[0]} training rows to set the threshold "
                  f"(contamination={self.contamination})...", flush=True)
        parts = self._score_parts(X)
        center, scale = map(np.array, zip(*(robust_scale(p) for p in parts)))
        if not assign:
            center, scale = self.score_center_, self.score_scale_
        quantiles = []
        for name, method in SCORES.items():
            if method is None:
                scores = combine(parts, center, scale, name)
            elif method == COMBINED[0]:
                scores = parts[0]
            else:
                scores = self._apply(method, X)
            if not np.isfinite(scores).all():
                if method == "aligned_log_prior" and np.isfinite(parts[1]).all():
                    raise ValueError(
                        f"the aligner's calibrate ({type(self.module_.aligner).__name__}) "
                        "returns non-finite values on the training data, where the "
                        "log-prior it calibrates is finite: check calibrate against the "
                        "contract in skdivae.aligners (it must return finite values, one "
                        "per row)."
                    )
                raise FloatingPointError(
                    f"the trained model gives non-finite {name!r} scores on the training "
                    "data; try a smaller learning_rate_init or alignment_weight, or scaling "
                    "the input."
                )
            quantiles.append(np.quantile(scores, QUANTILE_LEVELS))
        if not assign:
            return self
        self.score_center_, self.score_scale_ = center, scale
        self.score_quantiles_ = np.array(quantiles)
        self.offsets_ = np.array(
            [threshold_from_quantiles(q, self.contamination) for q in self.score_quantiles_]
        )
        self.offset_ = float(self.offsets_[list(SCORES).index(self.anomaly_score)])
        return self

    def _current_offset(self):
        """The threshold of the current ``anomaly_score`` and ``contamination`` (for models
        saved before ``score_quantiles_`` existed: the thresholds set at fit)."""
        index = list(SCORES).index(self.anomaly_score)
        c = self.contamination  # (validated with every parameter when scoring)
        quantiles = getattr(self, "score_quantiles_", None)
        if quantiles is not None:
            return threshold_from_quantiles(quantiles[index], self.contamination)
        # A model saved by an older skdivae: thresholds only for what it was fitted with.
        offsets = getattr(self, "offsets_", None)
        fitted_share, fitted_score = getattr(self, "_legacy_thresholds", (c, self.anomaly_score))
        if c != fitted_share or (offsets is None and self.anomaly_score != fitted_score):
            raise ValueError(
                "this model was saved by an older skdivae, which kept thresholds only for "
                f"contamination={fitted_share!r}"
                + ("" if offsets is not None else f" and anomaly_score={fitted_score!r}")
                + ": set them back, or refit to change them after fit."
            )
        return self.offset_ if offsets is None else float(offsets[index])

    def _validated(self, X):
        check_is_fitted(self)
        # Parameters changed with set_params after fit are checked as fit checks them.
        self._validate_params()
        fitted_likelihood = self.module_.likelihood
        if self.likelihood != fitted_likelihood:  # the network scores what it was trained for
            raise ValueError(
                f"likelihood={self.likelihood!r} was set after fit, but this DiVAE was fitted "
                f"with likelihood={fitted_likelihood!r} and its network scores that one: set "
                "it back, or refit."
            )
        X = validate_real(self, X, reset=False)
        if fitted_likelihood == "bernoulli" and outside_unit_interval(X):
            raise ValueError(
                "this DiVAE was fitted with likelihood='bernoulli', which scores values in "
                f"[0, 1] only; X has values in [{X.min():.3g}, {X.max():.3g}]. Rescale X as "
                "the training data were; a scaler fitted on them can map new rows outside "
                "[0, 1], so clip (MinMaxScaler(clip=True)) or use likelihood='gaussian'."
            )
        return X

    def _apply(self, method, X):
        fn = getattr(self.module_, method)
        # The ELBO runs the decoder at 2L sigma points per row: smaller chunks, and its
        # large intermediates in buffers reused from chunk to chunk (one set per thread).
        points = 2 * int(self.module_.encoder.n_latent) if method == "elbo" else 1

        def make_fn():
            return functools.partial(fn, workspace=Workspace()) if method == "elbo" else fn

        rows = chunk_rows(self.module_, points)
        if self.n_threads == "auto":  # chunks side by side, one torch thread each
            # As many workers as CPUs, but no more than torch's own setting, so that a
            # limit set by the user, OMP_NUM_THREADS or joblib's workers is respected.
            workers = min(available_cpus(), torch.get_num_threads())
            out = parallel_no_grad(make_fn, X, min(rows, PARALLEL_CHUNK_ROWS), workers)
        else:
            with torch_threads(self.n_threads):
                out = batched_no_grad(make_fn(), X, rows)
        if method in PER_ROW and out.shape != (X.shape[0],):
            raise ValueError(
                f"the network's {method} has shape {out.shape} for {X.shape[0]} rows, not one "
                "value per row: a custom prior's log_prob, or an aligner's "
                "predict_log_density or calibrate (what scoring reads), must return shape "
                "(n_rows,) (the contracts in skdivae.priors and "
                "skdivae.aligners)."
            )
        return out

    def _score_parts(self, X):
        return [self._apply(method, X) for method in COMBINED]

    def _score_samples(self, X):
        if SCORES[self.anomaly_score] is not None:
            return self._apply(SCORES[self.anomaly_score], X)
        return combine(self._score_parts(X), self.score_center_, self.score_scale_,
                       self.anomaly_score)

    def _diagnostic_scores(self, X):
        """log-prior at the posterior mean, ELBO, and the teacher's log-density of ``X``
        (``None`` unless the teacher was kept, ``keep_density=True``)."""
        X = self._validated(X)
        rho = None
        if self.density_ is not None:
            center, scale = (self.module_.center.numpy(), self.module_.scale.numpy())
            rho = np.asarray(self.density_.score_samples((X - center) / scale), dtype=float)
        return self._apply("log_prior_at_mean", X), self._apply("elbo", X), rho

    def score_samples(self, X):
        """Normality score of each sample (higher = more normal).

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)

        Returns
        -------
        scores : ndarray of shape (n_samples,)
            As set by ``anomaly_score``:

            - ``"elbo"`` (default): the ELBO in nats, its reconstruction
              averaged over ``2 * n_components`` sigma points of the posterior;
            - ``"min(elbo,log_prior)"``: the smaller of the ELBO and the
              aligned log-prior, each as a robust z-score against the training
              rows (median and interquartile range, or mean absolute
              deviation where most training scores tie);
            - ``"elbo_at_mean"``: the ELBO with its reconstruction read at the
              posterior mean only (one decoder pass, faster);
            - ``"log_prior"``: the aligned log-prior at the posterior mean
              (the paper's score, in the teacher's units with the direct
              aligner, whose learned offset may end a fit on small data
              below that level; with the flow aligner the log-prior alone);
            - ``"elbo+log_prior"``: the sum of the two robust z-scores.
        """
        return self._score_samples(self._validated(X))

    def decision_function(self, X):
        """``score_samples(X)`` minus the threshold of the current ``anomaly_score``
        and ``contamination``: negative for outliers.

        The threshold is ``offset_`` for the score and share the model was
        fitted with; thresholds come from a summary of the training scores
        (``score_quantiles_``), so switching ``anomaly_score`` or
        ``contamination`` with ``set_params`` on a fitted model thresholds the
        current score at the current share, without a refit.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)

        Returns
        -------
        decision : ndarray of shape (n_samples,)
        """
        return self.score_samples(X) - self._current_offset()

    def predict(self, X):
        """Label each sample +1 (inlier) or -1 (outlier).

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)

        Returns
        -------
        labels : ndarray of shape (n_samples,)
            -1 where the decision is negative *or not a number* (a row so extreme
            that its score overflows is never passed as an inlier).
        """
        # ``>= 0`` rather than ``< 0``: a row whose score is not a number is an outlier.
        return np.where(self.decision_function(X) >= 0, 1, -1)

    def predict_proba(self, X):
        """Outlier probabilities calibrated on the training rows and the threshold.

        From the row's rank among the training scores: the outlier column is 1
        for a row that scores below every training row, 0.5 at the threshold
        (the ``contamination`` quantile, or the fence for ``"auto"``) and 0
        above every training row, linear in the training rank in between. So
        ``predict`` flags a row exactly when its outlier probability is above
        0.5, and the column ranks rows as :meth:`score_samples` does
        (inverted; ties saturate at 0 or 1 outside the training range). The
        columns follow PyOD's order: normal, then outlier. It follows the
        current ``anomaly_score`` and ``contamination``.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)

        Returns
        -------
        proba : ndarray of shape (n_samples, 2)
            ``[:, 0]``: probability that the row is normal; ``[:, 1]``: that it
            is an outlier (1 where the score is not a number).

        Examples
        --------
        >>> import numpy as np
        >>> from skdivae import DiVAE
        >>> rng = np.random.default_rng(0)
        >>> rows = np.vstack([rng.normal(size=(300, 3)), rng.uniform(-6, 6, size=(15, 3))])
        >>> proba = DiVAE(max_iter=100, random_state=0).fit(rows).predict_proba(
        ...     np.array([[0.0, 0.0, 0.0], [9.0, 9.0, 9.0]]))
        >>> bool(proba[1, 1] > 0.99 and proba[0, 1] < 0.5)
        True
        """
        scores = self.score_samples(X)
        quantiles = getattr(self, "score_quantiles_", None)
        if quantiles is None:
            raise ValueError(
                "this model was saved by an older skdivae without a summary of its training "
                "scores (score_quantiles_); refit it to use predict_proba."
            )
        quantiles = quantiles[list(SCORES).index(self.anomaly_score)]
        # The share scoring at or below, read at the middle of a tie: copies of one row,
        # whose scores can differ in their last bits, get one rank (and one probability).
        margin = TIE_TOLERANCE * np.maximum(1.0, np.abs(np.nan_to_num(scores)))
        rank = 0.5 * (np.interp(scores - margin, quantiles, QUANTILE_LEVELS)
                      + np.interp(scores + margin, quantiles, QUANTILE_LEVELS))
        threshold = self._current_offset()
        cut = float(np.clip(np.interp(threshold, quantiles, QUANTILE_LEVELS), 1e-9, 1 - 1e-9))
        # The side of the threshold decides the half, as predict does (a fence below every
        # training score leaves rows between the two with rank 0 but still inliers).
        outlier = np.where(scores < threshold, 1.0 - 0.5 * np.minimum(rank, cut) / cut,
                           0.5 * (1.0 - np.maximum(rank, cut)) / (1.0 - cut))
        outlier = np.where(np.isnan(scores), 1.0, outlier)
        return np.column_stack([1.0 - outlier, outlier])

    def score(self, X, y=None):
        """Mean per-sample ELBO, without the alignment term (higher is better).

        How well the generative model fits ``X`` as a density: comparable
        across architectures, epochs and priors, and what ``GridSearchCV`` uses
        when no ``scoring`` is given. It is *not* a way to tune the detector:
        alignment is a constraint the ELBO does not reward, so the mean ELBO
        falls as ``alignment_weight`` rises and a search with it picks weight 0
        on most data sets (``docs/results/score_study.md``), and a held-out
        ELBO can prefer a latent space too small to rank anomalies well (a
        walk-through on breast cancer: best at ``n_components=2``, where ROC
        AUC was best at 8 to 16). Without labels keep the defaults
        (:func:`skdivae.model_selection.choose_alignment_weight` is level with
        weight 1 on average, ``docs/results/holdout_weight_choice.md``); with
        anomaly labels, search with
        ``scoring=skdivae.model_selection.anomaly_roc_auc``.

        The ELBO is a log-density in the units of the features the DiVAE
        receives: behind a ``StandardScaler`` in a Pipeline it differs from a
        bare DiVAE's on the same rows by a constant (the sum of the logs of the
        scaler's scales). Compare scores between models fed the same features.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
        y : Ignored

        Returns
        -------
        score : float
        """
        return float(np.mean(self._apply("elbo", self._validated(X))))

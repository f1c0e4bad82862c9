"""How ``DiVAE.fit`` runs, as a mixin of :class:`~skdivae.DiVAE`: the input in memory or
streamed block by block, the refit of a collapsed fit, the convergence and collapse
warnings, and the fitted attributes (the training itself lives in ``_fitting.py`` and
``_streaming.py``)."""

import warnings

from sklearn.base import _fit_context
from sklearn.exceptions import ConvergenceWarning

from ._build import layer_sizes
from ._column_checks import warn_about_columns
from ._collapse import module_active_dimensions, train_using_the_latent, warn_latent_unused
from ._streaming import fit_streaming, is_out_of_core
from ._torch_utils import torch_threads, training_mode
from ._training import convergence_message
from ._training_data import density_dim
from ._validation import check_bernoulli_range, validate_real


class FitMixin:
    """``DiVAE.fit`` and the work behind it; :class:`~skdivae.DiVAE` provides the
    parameters and ``_set_offset``."""

    def fit(self, X, y=None):
        """Fit the density teacher, then train the VAE with alignment.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Training data, finite; at least 3 rows. A ``numpy.memmap``, a dask
            array or a dask dataframe is streamed block by block, in memory
            bounded by the block size whatever the number of rows (one pass for
            the moments, the teacher on a random sample of at most 100 000 rows,
            blocks in a random order shuffled four at a time;
            ``docs/deployment.md``). With ``early_stopping=True`` a memmap is read
            into memory and fitted as an array (the held-out rows need it), and a
            dask collection is refused.
        y : Ignored
            Not used, present for API consistency. To score a search with
            anomaly labels, use ``scoring=skdivae.model_selection.anomaly_roc_auc``
            (it reads 0/1 labels with 1 = anomaly, and -1/+1); scikit-learn's
            ``"roc_auc"`` is right for -1/+1 labels only.

        Returns
        -------
        self : DiVAE
            The fitted estimator.

        Warns
        -----
        PosteriorCollapseWarning
            When no latent dimension is used (every row gets nearly the same
            code) after the refit that ``batch_size="auto"`` makes: the score is
            then one Gaussian per feature, wrong for data in several clusters
            (user guide, section 3).
        UserWarning
            When columns of ``X`` are constant (a new row that differs there may
            score only a little lower), and when a fixed ``decoder_std`` meets
            columns whose ranges differ more than 1000-fold (scale the numeric
            columns first). Checked for ``X`` in memory; a streamed fit does not.
        """
        try:
            return self._validated_fit(X)
        except BaseException:
            # Also when the parameters fail validation: a refit that fails never leaves
            # the previous fit in place.
            self._forget_fit()
            raise

    @_fit_context(prefer_skip_nested_validation=False)
    def _validated_fit(self, X):
        with torch_threads(1 if self.n_threads == "auto" else self.n_threads), training_mode():
            X = self._fit(X)
        self._set_offset(X)
        return self

    def _forget_fit(self):
        """Remove every fitted attribute, so a failed fit leaves an unfitted estimator."""
        fitted = [k for k in vars(self) if k.endswith("_") and not k.startswith("__")]
        for name in fitted + [k for k in ("_n_features_out",) if k in vars(self)]:
            delattr(self, name)

    def _check_training_input(self, X):
        """What the parameter constraints cannot say, checked before any work."""
        layer_sizes(self.hidden_layer_sizes)  # a ValueError naming it
        if self.likelihood == "bernoulli":
            check_bernoulli_range(X)

    def _fit(self, X):
        vars(self).pop("_block_trainer_", None)  # fit starts over; partial_fit continues it
        if is_out_of_core(X, self.early_stopping):  # trained block by block
            fitted, X = fit_streaming(self, X)  # X: the rows the threshold is set on
            status, max_iter = "converged", len(fitted["history_"])  # not monitored
            active = module_active_dimensions(fitted["module_"], X)
        else:
            X = validate_real(self, X, ensure_min_samples=3)
            self._check_training_input(X)
            # stacklevel: the user's call of fit (warn_about_columns, _fit, _validated_fit,
            # its wrapper, fit)
            warn_about_columns(self, X, stacklevel=6)
            (fitted, status, max_iter), active = train_using_the_latent(self, X)
        # With max_iter="auto" the library chose the budget, and a loss still falling at
        # its end is no evidence that more epochs help the detector: training 3x longer
        # lowered the mean ROC AUC of the fits that would have warned (docs/results/convergence.md).
        if status in ("still_falling", "too_short") and max_iter > 1 and self.max_iter != "auto":
            warnings.warn(
                convergence_message(status, max_iter), ConvergenceWarning,
                stacklevel=5,  # the user's call of fit (_fit, _validated_fit, its wrapper, fit)
            )
        if active == 0 and X.shape[0] > 1:
            warn_latent_unused()
        density = fitted.pop("density")
        for name, value in fitted.items():
            setattr(self, name, value)
        self.density_ = density if self.keep_density else None
        self.density_dim_ = density_dim(density, self.n_components)
        self.loss_curve_ = [h["loss"] for h in self.history_]
        self.n_iter_ = len(self.history_)
        self._n_features_out = int(self.n_components)
        return X

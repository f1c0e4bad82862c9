"""``DiVAE.partial_fit``: training block by block, as a mixin of :class:`~skdivae.DiVAE`
(the training state itself lives in ``_incremental.py``)."""

from sklearn.base import _fit_context

from ._collapse import module_active_dimensions, warn_latent_unused
from ._column_checks import warn_about_columns
from ._incremental import check_block, keeps_fitted_threshold, partial_fit_step
from ._torch_utils import torch_threads, training_mode


class PartialFitMixin:
    """``partial_fit`` for DiVAE, which provides the parameters, ``_forget_fit`` and
    ``_set_offset``."""

    def partial_fit(self, X, y=None):
        """Train on one block of rows: one pass of mini-batches over ``X``.

        For data that arrive in blocks or do not fit in memory (a stream, the
        partitions of a dask collection through ``dask_ml.wrappers.Incremental``).
        The first call (on an unfitted model) fixes what ``fit`` derives from all
        rows: the standardisation (this block's mean and standard deviation),
        the density teacher (fitted on this block, or a copy of ``density``),
        the trimming threshold on the teacher's log-density (the
        ``trim_fraction`` quantile of this block's), the network's starting
        values and the mini-batch size. Every call then trains one pass over its
        rows in a random order, with the teacher's log-density of each row
        queried on the fly; call ``k`` (from 0) uses the warm-up factors of epoch
        ``k`` of ``fit`` with the same ``max_iter`` (``"auto"``: counted for
        the first block's size), so ``beta`` and the alignment weight ramp up
        over the first calls. Adam's state carries over from call to call.

        The threshold (``offset_``, ``score_quantiles_``) and the robust scales of
        the combined scores are set, after each call, from a uniform sample of at
        most 10 000 of all the rows seen (the rows themselves while there are
        fewer). After ``fit`` or ``load`` the fit's rows are not at hand: the
        fit's threshold and scales stay until the continued training has seen
        1 000 rows, and then come from a sample of the rows seen since. The
        count is part of the training state, which ``skdivae.save`` leaves out:
        a model saved and loaded between blocks of fewer than 1 000 rows keeps
        the fit's threshold (``pickle`` keeps the count). The parameters that
        define the network and its training are fixed by the first call: changing one of them with ``set_params``
        before a later call raises a ``ValueError``. A model
        trained by one call on ``X`` is the model of ``fit(X)`` with
        ``max_iter=1`` (unless that fit refits a collapsed network with batches of
        8, which ``batch_size="auto"`` does and ``partial_fit`` never does; past
        the warm-ups a collapsed network warns, ``PosteriorCollapseWarning``);
        over several blocks it is close to a one-epoch ``fit`` on their union
        (the teacher and the standardisation then come from the first block
        only). After ``fit`` or ``load``, ``partial_fit`` continues
        the fitted network with fresh optimiser state, keeping its
        standardisation, and fits a teacher on the block unless one was kept
        (``keep_density=True``). ``fit`` starts over. ``early_stopping`` and
        ``validation_fraction`` do not apply. A block that fails validation
        (other features, NaN, values beyond 1e18, too few rows) leaves the model
        as it was. If the first call after ``fit`` or ``load`` fails while
        training (e.g. diverges, or leaves scores that are not finite), the
        fitted model is put back as it was; a later call that fails leaves the
        model unfitted, as block-by-block training does from its start. Until ``fit`` starts over,
        the model holds its training state (the optimiser, the teacher and the
        sample above), which pickles with it; ``skdivae.save`` leaves it out.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            A block of training rows (at least 3 in the first call), with the
            features of the first call.
        y : Ignored

        Returns
        -------
        self : DiVAE

        Examples
        --------
        >>> import numpy as np
        >>> from skdivae import DiVAE
        >>> X = np.random.default_rng(0).normal(size=(600, 4))
        >>> model = DiVAE(n_components=2, random_state=0)
        >>> for block in np.array_split(X, 3):
        ...     model = model.partial_fit(block)
        >>> model.n_iter_, model.score_samples(X[:2]).shape
        (3, (2,))
        """
        self._validate_params()
        first = not hasattr(self, "module_")
        try:
            X = check_block(self, X)  # a block refused here leaves a fitted model as it was
            if first:  # the first block fixes the standardisation for every later call
                warn_about_columns(self, X, stacklevel=3, data="the first block")
        except BaseException:  # (also a warning turned into an error)
            if first:
                self._forget_fit()
            raise
        # After fit or load, training works on a copy of the network, so the fitted model
        # can be put back as it was if the call fails; block by block, the training state
        # itself moves on, and a failure leaves the model unfitted.
        before = dict(vars(self)) if getattr(self, "_block_trainer_", None) is None else None
        try:
            return self._validated_partial_fit(X)
        except BaseException:
            if before is not None and not first:
                vars(self).clear()
                vars(self).update(before)
            else:
                self._forget_fit()
            raise

    @_fit_context(prefer_skip_nested_validation=False)
    def _validated_partial_fit(self, X):
        with torch_threads(1 if self.n_threads == "auto" else self.n_threads), training_mode():
            sample = partial_fit_step(self, X)
        trainer = self._block_trainer_
        # Past the warm-ups (the objective at full weights), as fit judges its end: a
        # collapsed network warns here too; partial_fit cannot refit with smaller batches.
        # After fit or load, not until the rows seen since cover the data as the threshold
        # asks (a few rows of one cluster would look collapsed).
        if trainer.passes > max(trainer.beta_warm, trainer.align_warm) and sample.shape[0] > 1 \
                and not keeps_fitted_threshold(trainer) \
                and module_active_dimensions(self.module_, sample) == 0:
            warn_latent_unused(stacklevel=5)  # the user's call of partial_fit
        # Too few rows seen since fit for a threshold of their own: keep the fit's, but
        # check the scores as setting one would (a last step may have diverged).
        return self._set_offset(sample, assign=not keeps_fitted_threshold(self._block_trainer_))

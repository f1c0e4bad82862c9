"""DiVAE's generative side: decoding latent points, sampling the learned prior, and the
per-feature residuals that explain a row's score. Mixed into :class:`~skdivae.DiVAE`,
which provides ``module_`` (``_apply`` and ``_validated`` come from ``_outputs.OutputsMixin``)."""

from numbers import Integral

import numpy as np
import torch
from sklearn.utils import check_random_state
from sklearn.utils.validation import check_array, check_is_fitted


class GenerativeMixin:
    """``feature_residuals``, ``inverse_transform`` and ``sample`` for a fitted DiVAE."""

    def feature_residuals(self, X):
        """Which features drive each row's score: per-feature reconstruction residuals.

        The residual of feature j is ``(x_j - xhat_j) / sigma_j``, with
        ``xhat`` the decoder mean at the posterior mean ``mu(x)`` and
        ``sigma_j`` the decoder's noise scale (``x_j - p_j`` for
        ``likelihood="bernoulli"``). Its square is, up to constants, feature
        j's share of the reconstruction term of the ELBO, so the features
        with the largest ``|residual|`` are those that make a row look
        anomalous to the decoder.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)

        Returns
        -------
        residuals : ndarray of shape (n_samples, n_features_in_)

        Examples
        --------
        >>> import numpy as np
        >>> from skdivae import DiVAE
        >>> rng = np.random.default_rng(0)
        >>> X = np.vstack([rng.normal(size=(300, 3)), rng.uniform(-6, 6, size=(15, 3))])
        >>> det = DiVAE(max_iter=100, random_state=0).fit(X)
        >>> odd = np.array([[0.0, 9.0, 0.0]])  # feature 1 is far off
        >>> int(np.argmax(np.abs(det.feature_residuals(odd))))
        1
        """
        return self._apply("residuals", self._validated(X))

    def inverse_transform(self, Z):
        """Decoder means for latent points, in the units of the input.

        Parameters
        ----------
        Z : array-like of shape (n_samples, n_components)

        Returns
        -------
        X : ndarray of shape (n_samples, n_features_in_)
        """
        check_is_fitted(self)
        Z = check_array(Z, dtype=np.float64, input_name="Z")
        n_latent = int(self.module_.encoder.n_latent)  # the trained network's, not a later set_params
        if Z.shape[1] != n_latent:
            raise ValueError(f"Z must have shape (n_samples, {n_latent}), got {Z.shape}.")
        return self._apply("decode_mean", Z)

    def sample(self, n_samples=1, random_state=None):
        """Draw latents from the learned prior and decode them.

        Parameters
        ----------
        n_samples : int >= 1, default=1
        random_state : int, RandomState instance or None, default=None

        Returns
        -------
        X : ndarray of shape (n_samples, n_features_in_)
            Decoder means of ``z ~ p_Z``.
        """
        check_is_fitted(self)
        if isinstance(n_samples, bool) or not isinstance(n_samples, Integral) or n_samples < 1:
            raise ValueError(
                f"Invalid value for 'n_samples': {n_samples!r}. The sampling requires at least "
                "one sample (a positive int), as in GaussianMixture.sample."
            )
        seed = int(check_random_state(random_state).randint(np.iinfo(np.int32).max))
        try:
            with torch.no_grad():
                z = self.module_.sample_prior(n_samples, torch.Generator().manual_seed(seed))
            return self._apply("decode_mean", z.numpy())
        except (MemoryError, RuntimeError) as exc:
            if isinstance(exc, RuntimeError) and "alloc" not in str(exc):
                raise
            size = n_samples * (self.n_features_in_ + int(self.module_.encoder.n_latent)) * 8
            raise MemoryError(
                f"sample(n_samples={n_samples}) needs more than {size / 2**30:.3g} GiB (the "
                f"latent draws and the rows alone); draw fewer at a time ({exc}).") from exc

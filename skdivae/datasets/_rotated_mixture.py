"""The paper's synthetic data: a 2-D Gaussian mixture, padded with noise and rotated."""

from numbers import Integral, Real

import numpy as np
from scipy.special import logsumexp
from scipy.stats import norm
from sklearn.utils import check_array, check_random_state


class RotatedGaussianMixture:
    """A 2-D Gaussian mixture embedded in ``n_features`` dimensions by a random rotation.

    The 2-D mixture has ``n_components`` equally weighted components with
    means drawn from ``N(0, 4^2)`` clipped to [-5, 5] and per-axis scales
    from ``N(0.5, 0.02^2)`` clipped to [0.4, 0.6]. The other
    ``n_features - 2`` coordinates are ``N(0, noise^2)`` noise, and the
    whole vector is rotated by a random orthogonal matrix (QR of a Gaussian
    matrix, determinant +1). The true log-density is known everywhere.

    Parameters
    ----------
    n_components : int, default=8
        Number of mixture components.
    n_features : int, default=50
        Ambient dimension (at least 2).
    noise : float, default=0.02
        Standard deviation of the padding dimensions.
    random_state : int, RandomState instance or None, default=None
        Draws the means, scales and rotation.

    Attributes
    ----------
    means_ : ndarray of shape (n_components, 2)
    scales_ : ndarray of shape (n_components, 2)
    rotation_ : ndarray of shape (n_features, n_features)
        ``X = [x2d, padding] @ rotation_.T``.

    Examples
    --------
    >>> from skdivae.datasets import RotatedGaussianMixture
    >>> data = RotatedGaussianMixture(n_components=4, n_features=10, random_state=0)
    >>> X, labels = data.sample(500, random_state=1)
    >>> X.shape, data.log_density_2d(X).shape
    ((500, 10), (500,))
    """

    def __init__(self, n_components=8, n_features=50, noise=0.02, random_state=None):
        if isinstance(n_components, bool) or not isinstance(n_components, Integral) or n_components < 1:
            raise ValueError(f"n_components must be a positive int, got {n_components!r}.")
        if isinstance(n_features, bool) or not isinstance(n_features, Integral) or n_features < 2:
            raise ValueError(f"n_features must be an int of at least 2, got {n_features!r}.")
        if isinstance(noise, bool) or not (isinstance(noise, Real) and np.isfinite(noise)
                                           and noise > 0):
            raise ValueError(f"noise must be a positive finite number, got {noise!r}.")
        rng = check_random_state(random_state)
        self.n_components = n_components
        self.n_features = n_features
        self.noise = noise
        self.means_ = np.clip(rng.normal(0.0, 4.0, size=(n_components, 2)), -5, 5)
        self.scales_ = np.clip(rng.normal(0.5, 0.02, size=(n_components, 2)), 0.4, 0.6)
        q, r = np.linalg.qr(rng.normal(size=(n_features, n_features)))
        q = q * np.sign(np.diag(r))
        if np.linalg.det(q) < 0:
            q[:, 0] = -q[:, 0]
        self.rotation_ = q

    def sample(self, n_samples, random_state=None):
        """Draw ``n_samples`` points; returns ``(X, component_labels)``."""
        if isinstance(n_samples, bool) or not isinstance(n_samples, Integral) or n_samples < 0:
            raise ValueError(f"n_samples must be an int of at least 0, got {n_samples!r}.")
        rng = check_random_state(random_state)
        labels = rng.randint(self.n_components, size=n_samples)
        x2d = self.means_[labels] + self.scales_[labels] * rng.normal(size=(n_samples, 2))
        pad = self.noise * rng.normal(size=(n_samples, self.n_features - 2))
        return np.hstack([x2d, pad]) @ self.rotation_.T, labels

    def unrotate(self, X):
        """Coordinates before the rotation: the first two are the mixture plane."""
        X = check_array(X, dtype=np.float64, input_name="X")
        if X.shape[1] != self.n_features:
            raise ValueError(f"X has {X.shape[1]} features, but this mixture lives in "
                             f"{self.n_features} dimensions (n_features).")
        return X @ self.rotation_

    def log_density_2d(self, X):
        """True log-density of the 2-D mixture at the projection of ``X`` on its plane."""
        x2d = self.unrotate(X)[:, :2]
        comp = norm.logpdf(x2d[:, None, :], self.means_[None], self.scales_[None]).sum(-1)
        return logsumexp(comp, axis=1) - np.log(self.n_components)

    def log_density(self, X):
        """True log-density in all ``n_features`` dimensions (mixture plus noise)."""
        pad = self.unrotate(X)[:, 2:]
        return self.log_density_2d(X) + norm.logpdf(pad, 0.0, self.noise).sum(axis=1)

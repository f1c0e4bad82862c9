"""Aligners of :class:`~skdivae.DiVAE`: how the log-prior is pulled towards rho.

Like the priors, aligners are parameter objects whose ``build`` creates a
fresh torch module inside ``fit``.
"""

from numbers import Real

from sklearn.base import BaseEstimator

from ._nn.aligners import Direct

__all__ = ["DirectAligner"]


class DirectAligner(BaseEstimator):
    """Direct alignment: pull ``log p_Z(z_i)`` towards ``rho_i``.

    ``z_i`` is the reparameterised posterior sample of the training step;
    the penalty is ``sqrt(mean_i w_i Huber_delta(log p_Z(z_i) - rho_i))``
    with ``w_i = 1 / max(err_i, 1e-3)``. Its gradient reaches the encoder and
    every learnable prior parameter.

    Parameters
    ----------
    delta : float, default=1.0
        Huber threshold (nats).

    Examples
    --------
    >>> from skdivae.aligners import DirectAligner
    >>> DirectAligner(delta=0.5).build(n_latent=2, n_components=2).delta
    0.5
    """

    def __init__(self, delta=1.0):
        self.delta = delta

    def build(self, *, n_latent, n_components):
        """Create the torch module (``n_components``: dimension of rho's space)."""
        if not isinstance(self.delta, Real) or self.delta <= 0:
            raise ValueError(f"delta must be a positive number, got {self.delta!r}.")
        return Direct(float(self.delta))


#: Shorthand strings accepted by ``DiVAE(aligner=...)``.
ALIGNERS = {"direct": DirectAligner}

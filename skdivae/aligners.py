"""Aligners of :class:`~skdivae.DiVAE`: how the log-prior is pulled towards rho.

Like the priors, aligners are parameter objects whose ``build`` creates a
fresh torch module inside ``fit``.
"""

from numbers import Integral, Real

from sklearn.base import BaseEstimator

from ._nn.aligners import Direct, FlowCorrected
from ._nn.flow import CouplingFlow

__all__ = ["DirectAligner", "FlowAligner"]


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
    >>> DirectAligner(delta=0.5).build(n_latent=2, n_features=4, n_components=2).delta
    0.5
    """

    def __init__(self, delta=1.0):
        self.delta = delta

    def build(self, *, n_latent, n_features, n_components):
        """Create the torch module (``n_components``: dimension of rho's space)."""
        return Direct(_positive(self.delta, "delta"))


class FlowAligner(BaseEstimator):
    """Flow-corrected alignment (RealNVP affine couplings).

    A flow ``f`` maps each sample's standardised PCA coordinates ``u`` (PCA
    of the standardised training data, ``n_components`` of the DiVAE) to
    the latent space. It is fitted with its own Adam optimiser by maximum
    likelihood of ``u`` under the current prior as base density, one step
    per mini-batch; the prior gets no gradient from it. The VAE step then
    aligns ``log p_Z(z_i) + log|det J_f(u_i)|`` (plus the constant Jacobian
    of the PCA standardisation) with ``rho_i``, the Jacobian term being a
    fixed per-sample offset: the alignment term never trains the flow.

    Parameters
    ----------
    n_layers : int, default=5
        Number of affine coupling layers (the paper: 5 on synthetic data,
        8 on MNIST).
    hidden_units : int, default=16
        Width of the two hidden layers of each coupling network (the paper:
        16 on synthetic data, 128 on MNIST).
    learning_rate : float, default=1e-3
        Learning rate of the flow's own Adam optimiser.
    update_every : int, default=4
        The flow takes one step on the union of this many consecutive VAE
        mini-batches (so it sees every sample once per epoch, like the VAE),
        and those VAE steps reuse its log-determinants. 1 steps the flow with
        every mini-batch, as the paper does; see ``docs/flow_aligner.md`` for
        the cost and the effect of the choice.
    delta : float, default=1.0
        Huber threshold (nats).

    Examples
    --------
    >>> from skdivae.aligners import FlowAligner
    >>> module = FlowAligner(n_layers=3).build(n_latent=2, n_features=4, n_components=2)
    >>> len(module.flow.layers)
    3
    """

    def __init__(self, n_layers=5, hidden_units=16, learning_rate=1e-3, update_every=4, delta=1.0):
        self.n_layers = n_layers
        self.hidden_units = hidden_units
        self.learning_rate = learning_rate
        self.update_every = update_every
        self.delta = delta

    def build(self, *, n_latent, n_features, n_components):
        """Create the torch module; its PCA buffers are set from the data in ``fit``."""
        n_layers = _positive_int(self.n_layers, "n_layers")
        hidden = _positive_int(self.hidden_units, "hidden_units")
        flow = CouplingFlow(n_latent, n_layers, hidden)
        return FlowCorrected(
            flow,
            n_latent,
            n_features,
            delta=_positive(self.delta, "delta"),
            learning_rate=_positive(self.learning_rate, "learning_rate"),
            update_every=_positive_int(self.update_every, "update_every"),
        )


def _positive(value, name):
    if isinstance(value, bool) or not isinstance(value, Real) or not value > 0:
        raise ValueError(f"{name} must be a positive number, got {value!r}.")
    return float(value)


def _positive_int(value, name):
    if isinstance(value, bool) or not isinstance(value, Integral) or value < 1:
        raise ValueError(f"{name} must be a positive integer, got {value!r}.")
    return int(value)


#: Shorthand strings accepted by ``DiVAE(aligner=...)``.
ALIGNERS = {"direct": DirectAligner, "flow": FlowAligner}

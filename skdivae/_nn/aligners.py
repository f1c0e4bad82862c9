"""Alignment of the log-prior with the density teacher rho: the penalties and the two
:class:`~skdivae._nn.contracts.AlignerModule` subclasses."""

import torch
from torch import nn

from .contracts import AlignerModule

#: Smallest standard error used in the precision weights ``1 / max(err, 1e-3)``.
MIN_ERR = 1e-3


def precision_weight(err):
    """``1 / max(err, 1e-3)``: the authors weight by 1/sigma, not 1/sigma^2."""
    return 1.0 / err.clamp_min(MIN_ERR)


def huber_terms(pred, target, weight, delta=1.0, scaling="weight"):
    """Per-sample penalty: ``w_i Huber_delta(pred_i - target_i)`` (``scaling="weight"``,
    the paper) or ``Huber_delta((pred_i - target_i) w_i)`` (``"standardize"``: the
    residual in units of its standard error, as ``w_i = 1 / err_i``)."""
    if scaling == "weight":
        return weight * nn.functional.huber_loss(pred, target, reduction="none", delta=delta)
    residual = (pred - target) * weight
    return nn.functional.huber_loss(residual, torch.zeros_like(residual), reduction="none", delta=delta)


def reduce_terms(terms, reduction="sqrt"):
    """``mean(terms)``, or the paper's ``sqrt(mean(terms))``; the small constant inside the
    square root keeps the gradient finite at perfect agreement."""
    value = terms.mean()
    return torch.sqrt(value + 1e-12) if reduction == "sqrt" else value


def weighted_penalty(pred, target, weight, delta=1.0):
    """``sqrt(mean_i w_i Huber_delta(pred_i - target_i))`` for precomputed weights ``w``."""
    return reduce_terms(huber_terms(pred, target, weight, delta), "sqrt")


def alignment_penalty(pred, target, err, delta=1.0):
    """The paper's penalty with ``w_i = 1 / max(err_i, 1e-3)`` from standard errors."""
    return weighted_penalty(pred, target, precision_weight(err), delta)


class Direct(AlignerModule):
    """Direct aligner: the aligned log-density is (a calibration of) ``log p_Z(z)``.

    Parameters
    ----------
    delta : float
        Huber threshold.
    point : {"mean", "sample"}
        Where the log-prior is evaluated in the penalty: at the posterior
        mean (the point that scoring uses) or at the reparameterised sample
        of the training step (the paper).
    reduction : {"mean", "sqrt"}
        ``mean_i(...)`` or the paper's ``sqrt(mean_i(...))``.
    scaling : {"standardize", "weight"}
        ``Huber(r_i / err_i)`` (the residual in units of its standard error)
        or the paper's ``w_i Huber(r_i)`` with ``w_i = 1 / err_i``.
    calibration : {"offset", "affine", None}
        Learnable map from ``log p_Z`` to the teacher's units: ``log p_Z + b``
        (``b`` the log-Jacobian between the latent and the teacher's space),
        ``a log p_Z + b`` with ``a > 0``, or none (the paper).
    multiplier : float
        Constant factor on the penalty (the number of features when the
        penalty is scaled like the reconstruction term).
    moves_codes : bool
        Whether the penalty's gradient reaches the encoder through the code
        (``False``: the code is a constant for the penalty).
    """

    def __init__(
        self, delta=1.0, point="sample", reduction="sqrt", scaling="weight", calibration=None,
        multiplier=1.0, moves_codes=True,
    ):
        super().__init__()
        self.multiplier = multiplier
        self.moves_codes = moves_codes
        self.delta = delta
        self.point = point
        self.reduction = reduction
        self.scaling = scaling
        self.calibration = calibration
        if calibration is not None:
            self.offset = nn.Parameter(torch.zeros(()))
        if calibration == "affine":
            self.log_slope = nn.Parameter(torch.zeros(()))

    def extra_repr(self):
        return (f"delta={self.delta!r}, point={self.point!r}, reduction={self.reduction!r}, "
                f"scaling={self.scaling!r}, calibration={self.calibration!r}, "
                f"multiplier={getattr(self, 'multiplier', 1.0)!r}, "
                f"moves_codes={getattr(self, 'moves_codes', True)!r}")

    def calibrate(self, log_prior):
        """The log-prior in the teacher's units (identity without calibration)."""
        if self.calibration is None:
            return log_prior
        if self.calibration == "affine":
            log_prior = torch.exp(self.log_slope) * log_prior
        return log_prior + self.offset

    def predict_log_density(self, log_prior, x_std=None, log_det=None):
        return self.calibrate(log_prior)

    def penalty(self, pred, target, weight):
        """Penalty for precision weights ``weight = precision_weight(err)``."""
        terms = huber_terms(pred, target, weight, self.delta, self.scaling)
        return self.multiplier * reduce_terms(terms, self.reduction)


class FlowCorrected(AlignerModule):
    """Flow-corrected aligner.

    A flow ``f`` maps the standardised PCA coordinates ``u`` of a sample to
    the latent space and is fitted, with its own optimiser, by maximum
    likelihood of ``u`` under the current prior as base density (the prior
    receives no gradient from it). The aligned log-density is
    ``log p_Z(z) + log|det J_f(u)| - sum_j log sd_j``: the density that the
    prior and the flow give to the PCA coordinates, in the units of rho. The
    Jacobian term is a fixed per-sample offset for the VAE step, so the
    alignment term never trains the flow.

    ``init_from_data`` stores the PCA (mean, components, standard deviations)
    of the standardised training data as buffers.
    """

    needs_input = True

    def __init__(self, flow, n_latent, n_features, delta=1.0, learning_rate=1e-3, update_every=1):
        super().__init__()
        self.flow = flow
        self.delta = delta
        self.learning_rate = learning_rate
        self.update_every = update_every
        self.register_buffer("pca_mean", torch.zeros(n_features))
        self.register_buffer("components", torch.zeros(n_latent, n_features))
        self.register_buffer("u_scale", torch.ones(n_latent))
        self.register_buffer("log_jacobian_pca", torch.zeros(()))

    def extra_repr(self):
        return (f"delta={self.delta!r}, learning_rate={self.learning_rate!r}, "
                f"update_every={self.update_every!r}")

    def own_parameters(self):
        """The flow's parameters: trained by its likelihood only."""
        return list(self.parameters())

    @torch.no_grad()
    def init_from_data(self, X_std, generator=None):
        """Fit the PCA of ``X_std`` (standardised training data) into the buffers."""
        X = X_std.to(self.pca_mean)
        mean = X.mean(0)
        cov = (X - mean).T @ (X - mean) / max(X.shape[0] - 1, 1)
        eigval, eigvec = torch.linalg.eigh(cov)
        order = torch.argsort(eigval, descending=True)
        k = min(self.components.shape[0], X.shape[1])
        sd = eigval[order[:k]].clamp_min(1e-12).sqrt()
        self.pca_mean.copy_(mean)
        self.components.zero_()
        self.components[:k] = eigvec[:, order[:k]].T
        self.u_scale.fill_(1.0)
        self.u_scale[:k] = sd
        self.log_jacobian_pca.fill_(-float(sd.log().sum()))

    def coordinates(self, x_std):
        """Standardised PCA coordinates ``u`` of standardised inputs."""
        return ((x_std - self.pca_mean) @ self.components.T) / self.u_scale

    def auxiliary_loss(self, x_std, prior_dist):
        """Negative log-likelihood of ``u`` under prior + flow (trains the flow only).

        Returns the loss and the detached per-sample ``log|det J_f(u)|``, which
        the VAE step of the same mini-batch reuses as its fixed offset.
        """
        z, log_det = self.flow(self.coordinates(x_std))
        return -(prior_dist.log_prob(z) + log_det).mean(), log_det.detach()

    def predict_log_density(self, log_prior, x_std=None, log_det=None):
        if log_det is None:
            with torch.no_grad():
                _, log_det = self.flow(self.coordinates(x_std))
        return log_prior + log_det + self.log_jacobian_pca

    def penalty(self, pred, target, weight):
        """Penalty for precision weights ``weight = precision_weight(err)``."""
        return weighted_penalty(pred, target, weight, self.delta)

"""Latent priors as modules whose ``forward(encoder)`` returns a torch Distribution."""

import math

import torch
from torch import nn

from .distributions import diag_normal_mixture, standard_normal


class StandardNormal(nn.Module):
    """Fixed ``N(0, I)`` prior."""

    def __init__(self, n_latent):
        super().__init__()
        self.register_buffer("loc", torch.zeros(n_latent))
        self.register_buffer("scale", torch.ones(n_latent))

    def forward(self, encoder=None):
        return standard_normal(self.loc, self.scale)


class GaussianMixture(nn.Module):
    """Learnable diagonal Gaussian mixture: uniform logits, means ``0.1 N(0, 1)``,
    scales ``softplus(raw) + 0.05`` starting at 1. ``kl_estimator`` (one of
    ``kl.KL_ESTIMATORS``) tells the VAE how to compute KL(q || p) (``kl.py``)."""

    min_scale = 0.05

    def __init__(self, n_latent, n_components, kl_estimator="bound"):
        super().__init__()
        self.kl_estimator = kl_estimator
        self.logits = nn.Parameter(torch.zeros(n_components))
        self.loc = nn.Parameter(0.1 * torch.randn(n_components, n_latent))
        raw = math.log(math.expm1(1.0 - self.min_scale))
        self.raw_scale = nn.Parameter(torch.full((n_components, n_latent), raw))

    @torch.no_grad()
    def init_random(self, generator):
        """Means ``0.1 N(0, 1)`` drawn from ``generator``."""
        self.loc.normal_(0.0, 0.1, generator=generator)

    def forward(self, encoder=None):
        scale = nn.functional.softplus(self.raw_scale) + self.min_scale
        return diag_normal_mixture(self.logits, self.loc, scale)


class Vamp(nn.Module):
    """VampPrior: uniform mixture of the encoder's posteriors at learnable pseudo-inputs.

    The pseudo-inputs live in the encoder's input space and are not clipped.
    """

    def __init__(self, n_latent, n_features, n_components, kl_estimator="bound"):
        super().__init__()
        self.kl_estimator = kl_estimator
        self.pseudo_inputs = nn.Parameter(torch.randn(n_components, n_features))

    @torch.no_grad()
    def init_from_data(self, X, generator):
        """Start the pseudo-inputs at random training rows (plus a little noise)."""
        idx = torch.randint(X.shape[0], (self.pseudo_inputs.shape[0],), generator=generator)
        noise = 0.01 * torch.randn(self.pseudo_inputs.shape, generator=generator)
        self.pseudo_inputs.copy_(X[idx].to(self.pseudo_inputs) + noise.to(self.pseudo_inputs))

    def forward(self, encoder):
        return self.from_encoded(*encoder(self.pseudo_inputs))

    def from_encoded(self, loc, scale):
        """The prior from the encoder's output at the pseudo-inputs (a training step
        encodes them together with its mini-batch: one encoder pass, not two)."""
        logits = torch.zeros(loc.shape[0], dtype=loc.dtype, device=loc.device)
        return diag_normal_mixture(logits, loc, scale)

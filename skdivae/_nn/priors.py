"""The latent priors: :class:`~skdivae._nn.contracts.PriorModule` subclasses whose
``forward(encoder)`` returns a torch Distribution."""

import math

import torch
from torch import nn
from torch.distributions import kl_divergence

from .contracts import KL_SAMPLES, PriorModule
from .distributions import diag_normal_mixture, standard_normal
from .kl import GAP_DRAWS, mixture_kl, mixture_kl_bound_and_log_prob


class StandardNormal(PriorModule):
    """Fixed ``N(0, I)`` prior, with its KL in closed form."""

    def __init__(self, n_latent):
        super().__init__()
        self.register_buffer("loc", torch.zeros(n_latent))
        self.register_buffer("scale", torch.ones(n_latent))

    def forward(self, encoder=None):
        return standard_normal(self.loc, self.scale)

    def kl_draws(self):
        return 0

    def kl(self, q, p, z=None):
        """Closed form, in fewer operations than torch's generic formula (every step)."""
        loc, scale = q.base_dist.loc, q.base_dist.scale
        return (0.5 * (loc * loc + scale * scale - 1.0) - torch.log(scale)).sum(-1)

    def score_kl(self, q, p, points=None):
        return kl_divergence(q, p)

    def sample(self, p, n_samples, generator):
        loc, scale = p.base_dist.loc, p.base_dist.scale
        eps = torch.randn((n_samples, *loc.shape), generator=generator, dtype=loc.dtype,
                          device=loc.device)
        return loc + scale * eps

    def constant(self, p):
        return p  # buffers only: nothing to detach


class _MixturePrior(PriorModule):
    """A prior that is a mixture of diagonal Gaussians (``distributions._DiagNormalMixture``),
    its KL estimated by ``kl_estimator`` (one of ``kl.KL_ESTIMATORS``, see ``kl.py``)."""

    def extra_repr(self):
        return f"n_components={self.n_components!r}, kl_estimator={self.kl_estimator!r}"

    def kl_draws(self):
        return {"bound": 0, "corrected_bound": GAP_DRAWS}.get(self.kl_estimator, KL_SAMPLES)

    def kl(self, q, p, z=None):
        return mixture_kl(q, p, self.kl_estimator, z)

    def kl_and_log_prob(self, q, p, z_kl, z):
        if self.kl_estimator == "bound":  # the bound and log p_Z(z) in one autograd node
            return mixture_kl_bound_and_log_prob(q, p, z)
        return super().kl_and_log_prob(q, p, z_kl, z)

    def sample(self, p, n_samples, generator):
        comp = p.component_distribution.base_dist
        idx = torch.multinomial(
            p.mixture_distribution.probs, n_samples, replacement=True, generator=generator
        )
        eps = torch.randn(
            (n_samples, comp.loc.shape[-1]), generator=generator, dtype=comp.loc.dtype,
            device=comp.loc.device,
        )
        return comp.loc[idx] + comp.scale[idx] * eps

    def constant(self, p):
        return p.detach()

    def scoring_width(self, n_latent):
        return self.n_components * n_latent


class GaussianMixture(_MixturePrior):
    """Learnable diagonal Gaussian mixture: uniform logits, means ``0.1 N(0, 1)``,
    scales ``softplus(raw) + 0.05`` starting at 1."""

    min_scale = 0.05

    def __init__(self, n_latent, n_components, kl_estimator="bound"):
        super().__init__()
        self.kl_estimator = kl_estimator
        self.n_components = n_components
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


class Vamp(_MixturePrior):
    """VampPrior: uniform mixture of the encoder's posteriors at learnable pseudo-inputs.

    The pseudo-inputs live in the encoder's input space and are not clipped; a
    training step encodes them together with its mini-batch (:meth:`joint_inputs`).
    """

    def __init__(self, n_latent, n_features, n_components, kl_estimator="bound"):
        super().__init__()
        self.kl_estimator = kl_estimator
        self.n_components = n_components
        self.pseudo_inputs = nn.Parameter(torch.randn(n_components, n_features))

    @torch.no_grad()
    def init_from_data(self, X_std, generator):
        """Start the pseudo-inputs at random training rows (plus a little noise)."""
        idx = torch.randint(X_std.shape[0], (self.pseudo_inputs.shape[0],), generator=generator)
        noise = 0.01 * torch.randn(self.pseudo_inputs.shape, generator=generator)
        self.pseudo_inputs.copy_(X_std[idx].to(self.pseudo_inputs) + noise.to(self.pseudo_inputs))

    def forward(self, encoder):
        return self.from_encoded(*encoder(self.pseudo_inputs))

    def joint_inputs(self):
        return self.pseudo_inputs

    def from_encoded(self, loc, scale):
        """The prior from the encoder's output at the pseudo-inputs (one encoder pass for
        the mini-batch and the pseudo-inputs together, not two)."""
        logits = torch.zeros(loc.shape[0], dtype=loc.dtype, device=loc.device)
        return diag_normal_mixture(logits, loc, scale)

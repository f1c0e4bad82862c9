"""KL(q || p) between a diagonal Gaussian posterior and a mixture-of-Gaussians prior.

No closed form exists. For any responsibilities ``w`` on the components,
Jensen's inequality on the mixture's log-density gives

    log p(z) = J_w(z) + g_w(z),   J_w(z) = sum_k w_k log(pi_k N_k(z) / w_k),   g_w(z) >= 0,

and ``E_q[J_w]`` is closed form. With the best ``w_k ∝ pi_k exp(-KL(q || N_k))``
this yields the variational upper bound (Hershey & Olsen, 2007)

    KL(q || p) = B - E_q[g_w(z)],   B = -log sum_k pi_k exp(-KL(q || N_k)) >= KL(q || p).

Three estimators follow (``KL_ESTIMATORS``):

* ``"bound"`` (the default): ``B`` alone. Closed form and deterministic,
  exact for one component and tight when each posterior sits within one
  component (as trained posteriors mostly do); loose when a posterior
  straddles several components, and the gap grows without limit as the
  posterior widens relative to them.
* ``"corrected_bound"``: ``B`` minus the average of ``g_w`` over a few draws of
  ``q``. Unbiased, like plain Monte Carlo; ``g_w`` is nearly constant
  wherever the bound is tight, and on the tested trained models 5 draws
  vary less than the authors' 50 plain draws (``tests/test_kl_bound.py``),
  but for posteriors straddling many components they vary far more.
* ``"monte_carlo"``: the average of ``log q(z) - log p(z)`` over 50 draws of
  ``q`` (the authors' estimator).
"""

import math

import torch
from torch.autograd.function import once_differentiable

from .distributions import (
    logsumexp,
    mixture_logsumexp_backward,
    mixture_logsumexp_forward,
    softmax,
)

KL_ESTIMATORS = ("bound", "corrected_bound", "monte_carlo")
#: Draws of q for the corrected bound's Jensen-gap term.
GAP_DRAWS = 5


def gaussian_kl_to_components(loc, scale, comp_loc, comp_scale):
    """``KL(N(loc, scale^2) || N(comp_loc_k, comp_scale_k^2))`` for every component k.

    ``loc`` and ``scale`` have shape (..., L), the components (K, L); returns (..., K).
    The direct form, for reference and tests; training uses ``mixture_kl_bound``.
    """
    ratio = scale.unsqueeze(-2) / comp_scale
    diff = (loc.unsqueeze(-2) - comp_loc) / comp_scale
    return 0.5 * (ratio * ratio + diff * diff - 1.0).sum(-1) - torch.log(ratio).sum(-1)


def _posterior_entropy(scale):
    """Entropy of diagonal Gaussians with standard deviations ``scale`` (..., L)."""
    return torch.log(scale).sum(-1) + 0.5 * scale.shape[-1] * (1.0 + math.log(2 * math.pi))


def mixture_kl_bound(q, p):
    """The upper bound ``B`` on ``KL(q || p)`` for a diagonal Gaussian ``q`` and a mixture
    ``p`` of diagonal Gaussians.

    ``log pi_k - KL(q || N_k) = E_q[log(pi_k N_k(z))] + H(q)``, and the expectation of
    the quadratic form replaces ``z^2`` by ``mu^2 + sigma^2``: one call of
    ``p.quadratic_logsumexp``.
    """
    loc, scale = q.base_dist.loc, q.base_dist.scale
    entropy = _posterior_entropy(scale)
    return -(p.quadratic_logsumexp(loc * loc + scale * scale, loc) + entropy)


class _BoundAndLogProb(torch.autograd.Function):
    """``(B, log p(z))`` for posteriors ``N(m, s^2)`` (n, L) and points ``z`` (n, L) under
    a diagonal Gaussian mixture (``log_weights`` (K,), ``loc``, ``scale`` (K, L)), as one
    autograd node.

    Both are the mixture's quadratic log-sum-exp (``mixture_logsumexp_forward``) on
    rows ``[U | V]``: ``U = m^2 + s^2, V = m`` for the bound, ``U = z^2, V = z`` for the
    log-density, interleaved (row ``2i`` is posterior ``i``'s, row ``2i + 1`` its
    point's), so that one concatenation builds them all. Written as tensors, the
    stacking, squares, entropy and slicing are a dozen more autograd nodes per training
    step around the one that does the work; here they are part of its forward and
    backward. ``tests/test_losses.py`` checks the gradients against finite differences.
    """

    @staticmethod
    def forward(ctx, log_weights, loc, scale, m, s, z):
        n, n_latent = m.shape
        rows = torch.cat([torch.addcmul(m * m, s, s), m, z * z, z], 1).view(2 * n, 2 * n_latent)
        out, saved = mixture_logsumexp_forward(log_weights, loc, scale, rows)
        ctx.save_for_backward(m, s, z, *saved)
        out = out.view(n, 2)
        return (out[:, 0] + _posterior_entropy(s)).neg_(), out[:, 1]

    @staticmethod
    @once_differentiable
    def backward(ctx, grad_bound, grad_log_prob):
        m, s, z, *saved = ctx.saved_tensors  # an unused output's gradient arrives as zeros
        need = ctx.needs_input_grad
        n, n_latent = m.shape
        neg_bound = grad_bound.neg()
        grad = torch.stack([neg_bound, grad_log_prob], 1).view(2 * n, 1)
        d_lw, d_loc, d_scale, d_rows = mixture_logsumexp_backward(
            saved, grad, need[:3], any(need[3:]))
        d_m = d_s = d_z = None
        if d_rows is not None:
            d_Um, d_m, d_Uz, d_z = d_rows.view(n, 4 * n_latent).chunk(4, 1)
            d_m = torch.addcmul(d_m, d_Um, m, value=2.0) if need[3] else None
            d_s = neg_bound.unsqueeze(-1).div(s).addcmul_(d_Um, s, value=2.0) if need[4] else None
            d_z = torch.addcmul(d_z, d_Uz, z, value=2.0) if need[5] else None
        return d_lw, d_loc, d_scale, d_m, d_s, d_z


def mixture_kl_bound_and_log_prob(q, p, z):
    """``(mixture_kl_bound(q, p), p.log_prob(z))`` in one autograd node
    (:class:`_BoundAndLogProb`): a training step with an aligner needs both; ``z`` has
    the posterior's shape (n, L)."""
    return _BoundAndLogProb.apply(p.log_weights, p.component_loc, p.component_scale,
                                  q.base_dist.loc, q.base_dist.scale, z)


def bound_responsibilities(q, p):
    """The responsibilities ``w_k ∝ pi_k exp(-KL(q || N_k))`` that attain the bound."""
    loc, scale = q.base_dist.loc, q.base_dist.scale
    A, _, _ = p.quadratic_terms()
    return softmax(p.joint_log_prob(loc) + (scale * scale) @ A)


def jensen_gap(z, p, w):
    """``g_w(z) = log p(z) - sum_k w_k log(pi_k N_k(z) / w_k) >= 0`` at draws ``z`` of
    shape (S, n, L), with responsibilities ``w`` of shape (n, K); returns (S, n)."""
    log_joint = p.joint_log_prob(z)
    weighted = (w * log_joint - torch.special.xlogy(w, w)).sum(-1)
    return logsumexp(log_joint) - weighted


def corrected_kl(q, p, z):
    """Unbiased ``KL(q || p)``: the bound minus the mean Jensen gap at draws ``z`` of ``q``
    (the responsibilities are held fixed, which leaves the gradient unbiased too)."""
    w = bound_responsibilities(q, p).detach()
    return mixture_kl_bound(q, p) - jensen_gap(z, p, w).mean(0)


def mixture_kl(q, p, estimator, z):
    """``KL(q || p)`` for a mixture ``p`` by ``estimator`` (one of ``KL_ESTIMATORS``), with
    ``z`` (S, n, L) the draws (or sigma points) of ``q`` it uses; the bound uses none."""
    if estimator == "bound":
        return mixture_kl_bound(q, p)
    if estimator == "corrected_bound":
        return corrected_kl(q, p, z)
    return (q.log_prob(z) - p.log_prob(z)).mean(0)

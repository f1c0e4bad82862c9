"""Distribution constructors without argument validation.

torch validates distribution arguments and samples by default, which costs
more than the arithmetic for the small tensors of a VAE step; every value
passed here is produced by the model itself, so the checks are skipped.
"""

import functools
import math

import torch
from torch.distributions import (
    Bernoulli,
    Categorical,
    Distribution,
    Independent,
    MixtureSameFamily,
    Normal,
)


#: Log-weights this far below the largest are raised to it inside ``logsumexp``: exp(-80)
#: is still a normal float32, while exp of a more negative number is a denormal, on which
#: the CPU's arithmetic is a hundred times slower (a mixture prior's far components made a
#: training step several times slower). The value changes by at most K exp(-80) relative.
LOG_WEIGHT_FLOOR = -80.0


def _floored_weights(scores, in_place=False):
    """``(top, w, total)``: the largest score, ``w = exp(max(scores - top,
    LOG_WEIGHT_FLOOR))`` and ``total = sum(w)`` over the last dimension (keeping it).
    ``in_place`` reuses ``scores``' memory for ``w``."""
    top = scores.amax(-1, keepdim=True)
    shifted = scores.sub_(top) if in_place else scores - top
    weights = shifted.clamp_min_(LOG_WEIGHT_FLOOR).exp_()
    return top, weights, weights.sum(-1, keepdim=True)


class _FlooredLogSumExp(torch.autograd.Function):
    """``logsumexp`` over the last dimension, with terms floored at ``LOG_WEIGHT_FLOOR``
    below the largest, and a backward pass that reuses the forward's weights."""

    @staticmethod
    def forward(ctx, scores):
        top, weights, total = _floored_weights(scores)
        ctx.save_for_backward(weights, total)
        return (top + total.log()).squeeze(-1)

    @staticmethod
    def backward(ctx, grad):
        weights, total = ctx.saved_tensors
        return weights * (grad.unsqueeze(-1) / total)


def logsumexp(scores):
    """``log sum_k exp(scores_k)`` over the last dimension, without denormal numbers."""
    return _FlooredLogSumExp.apply(scores)


def softmax(scores):
    """``softmax`` over the last dimension, with the same floor as :func:`logsumexp`."""
    _, weights, total = _floored_weights(scores)
    return weights / total


def _component_terms(log_weights, loc, scale):
    """``(P, m P, c)`` of a diagonal Gaussian mixture: the precisions ``P = 1 / sigma^2``
    and ``m P`` (K, L), and ``c_k = log pi_k - m_k^2 . P_k / 2 - sum log sigma_k -
    L log(2 pi) / 2`` (K,)."""
    precision = scale.pow(-2)
    weighted_loc = loc * precision
    half_sq = torch.addcmul(scale.log(), loc, weighted_loc, value=0.5)
    const = log_weights - half_sq.sum(-1) - 0.5 * loc.shape[-1] * math.log(2 * math.pi)
    return precision, weighted_loc, const


def diag_normal(loc, scale):
    """Diagonal Gaussian over the last dimension."""
    return Independent(Normal(loc, scale, validate_args=False), 1, validate_args=False)


class _MixtureLogSumExp(torch.autograd.Function):
    """``logsumexp_k(log pi_k + log N_k)`` with the quadratic form written in sufficient
    statistics: ``U . A_k + V . B_k + c_k`` for rows ``U``, ``V`` (..., L), where
    ``A_k = -P_k / 2``, ``B_k = m_k P_k``, ``c_k = log pi_k - m_k^2 . P_k / 2 -
    sum log sigma_k - L log(2 pi) / 2`` and ``P_k = 1 / sigma_k^2``. ``U = V^2`` is the
    log-density at ``V``; ``U = mu^2 + sigma^2``, ``V = mu`` its expectation under a
    diagonal Gaussian.

    One autograd node with a hand-written backward: autograd's graph of the same
    expression has some thirty operations on tensors of a few hundred numbers,
    whose per-operation overhead is most of a mixture prior's cost per step.
    ``tests/test_losses.py`` checks the gradients against finite differences.
    """

    @staticmethod
    def forward(ctx, log_weights, loc, scale, U, V):
        lead, n_latent = U.shape[:-1], U.shape[-1]
        rows = torch.cat([U, V], -1).reshape(-1, 2 * n_latent)
        out, saved = mixture_logsumexp_forward(log_weights, loc, scale, rows)
        ctx.save_for_backward(*saved)
        ctx.lead = lead
        return out.reshape(lead)

    @staticmethod
    def backward(ctx, grad):
        need = ctx.needs_input_grad
        d_lw, d_loc, d_scale, d_rows = mixture_logsumexp_backward(
            ctx.saved_tensors, grad.reshape(-1, 1), need[:3], need[3] or need[4])
        d_U = d_V = None
        if d_rows is not None:
            d_U, d_V = d_rows.reshape(*ctx.lead, -1).chunk(2, -1)
        return d_lw, d_loc, d_scale, d_U if need[3] else None, d_V if need[4] else None


def mixture_logsumexp_forward(log_weights, loc, scale, rows):
    """The forward arithmetic of :class:`_MixtureLogSumExp` on ``rows = [U | V]``
    (N, 2L), without a graph: ``(out (N,), saved)``, ``saved`` being what
    :func:`mixture_logsumexp_backward` needs (the responsibilities among it).

    The scores are one matrix product of the rows with ``[A | B]`` (K, 2L)."""
    precision, weighted_loc, const = _component_terms(log_weights, loc, scale)
    coef = torch.cat([precision * -0.5, weighted_loc], -1)
    scores = torch.addmm(const, rows, coef.T)
    top, resp, total = _floored_weights(scores, in_place=True)
    resp.div_(total)
    return top.add_(total.log_()).squeeze(-1), (loc, scale, precision, coef, rows, resp)


def mixture_logsumexp_backward(saved, grad, need_components=(True, True, True), need_rows=True):
    """Gradients ``(d_log_weights, d_loc, d_scale, d_rows)`` of
    :func:`mixture_logsumexp_forward`'s output from ``grad`` (N, 1); a gradient is
    ``None`` where ``need_components`` (three flags) or ``need_rows`` says so.

    With ``G = d out / d scores`` (N, K), ``[d_A | d_B] = G^T rows`` and
    ``d_c = sum_rows G``; through ``A = -P / 2``, ``B = m P``, ``c`` and
    ``P = sigma^-2`` these give ``d_m = P (d_B - m d_c)`` and ``d_sigma =
    -(2 P d_P + d_c) / sigma`` with ``d_P = -d_A / 2 + m (d_B - m d_c / 2)``."""
    loc, scale, precision, coef, rows, resp = saved
    G = resp * grad
    d_lw = d_loc = d_scale = d_rows = None
    d_const = G.sum(0)
    if need_components[1] or need_components[2]:
        d_A, d_B = (G.T @ rows).chunk(2, -1)
        dc = d_const.unsqueeze(-1)
        if need_components[1]:
            d_loc = torch.addcmul(d_B, loc, dc, value=-1.0).mul_(precision)
        if need_components[2]:
            d_prec = torch.addcmul(d_A * -0.5, loc, torch.addcmul(d_B, loc, dc, value=-0.5))
            d_scale = torch.addcmul(dc, precision, d_prec, value=2.0).div_(scale).neg_()
    if need_components[0]:
        d_lw = d_const
    if need_rows:
        d_rows = G @ coef
    return d_lw, d_loc, d_scale, d_rows


class _DiagNormalMixture(MixtureSameFamily):
    """Mixture of diagonal Gaussians whose densities are matrix products.

    ``log(pi_k N_k(z)) = z^2 . A_k + z . B_k + c_k`` with ``A_k = -P_k / 2``,
    ``B_k = m_k P_k`` and the precisions ``P_k = 1 / sigma_k^2``: two
    ``(n, L) @ (L, K)`` products per evaluation instead of broadcasting an
    ``(n, K, L)`` tensor through a dozen element-wise operations, which is
    what a training step pays for (torch's generic
    ``MixtureSameFamily.log_prob`` costs more still). The expanded square
    loses about ``1e-7 * P_k |m_k|^2`` to cancellation in float32
    (thousandths of a nat for components a few units from the origin and no
    narrower than 0.05); scoring runs in float64.

    A training step builds one of these per mini-batch and only needs its
    tensors ``log_weights`` (K,), ``component_loc`` and ``component_scale``
    (K, L), so the torch ``Categorical`` and ``Normal`` that
    ``MixtureSameFamily`` holds are built on first use (sampling, ``mean``,
    ...), not in the constructor: their argument handling cost a fifth of a
    mixture prior's overhead per step. ``tests/test_losses.py`` checks the
    object against torch's ``MixtureSameFamily`` of the same parameters.
    """

    def __init__(self, log_weights, loc, scale):
        self.log_weights, self.component_loc, self.component_scale = log_weights, loc, scale
        self._num_component = loc.shape[-2]
        self._event_ndims = 1
        Distribution.__init__(self, batch_shape=loc.shape[:-2], event_shape=loc.shape[-1:],
                              validate_args=False)

    @functools.cached_property
    def _mixture_distribution(self):
        return Categorical(logits=self.log_weights, validate_args=False)

    @functools.cached_property
    def _component_distribution(self):
        return diag_normal(self.component_loc, self.component_scale)

    def quadratic_terms(self):
        """``(A, B, c)``: ``A = -P / 2`` and ``B = m P`` as (L, K) columns, and
        ``c_k = log pi_k - m_k^2 . P_k / 2 - sum log sigma_k - L log(2 pi) / 2``
        (K,). Computed once per distribution object."""
        if getattr(self, "_quadratic", None) is None:
            precision, weighted_loc, const = _component_terms(
                self.log_weights, self.component_loc, self.component_scale
            )
            self._quadratic = ((-0.5 * precision).T, weighted_loc.T, const)
        return self._quadratic

    def joint_log_prob(self, value):
        """``log(pi_k N_k(value))`` for every component: shape (..., K)."""
        A, B, const = self.quadratic_terms()
        return (value * value) @ A + value @ B + const

    def quadratic_logsumexp(self, U, V):
        """``logsumexp_k(U . A_k + V . B_k + c_k)`` (``_MixtureLogSumExp``); ``U = V^2``
        gives ``log_prob(V)``."""
        return _MixtureLogSumExp.apply(
            self.log_weights, self.component_loc, self.component_scale, U, V
        )

    def log_prob(self, value):
        return self.quadratic_logsumexp(value * value, value)

    def detach(self):
        """The same mixture with its parameters detached from the graph."""
        return _DiagNormalMixture(self.log_weights.detach(), self.component_loc.detach(),
                                  self.component_scale.detach())


def diag_normal_mixture(logits, loc, scale):
    """Mixture of diagonal Gaussians: ``logits`` (K,) (normalised here, by one
    ``log_softmax``), ``loc`` and ``scale`` (K, L)."""
    return _DiagNormalMixture(torch.log_softmax(logits, -1), loc, scale)


def bernoulli(logits):
    """Independent Bernoulli over the last dimension (accepts grey levels in [0, 1])."""
    return Independent(Bernoulli(logits=logits, validate_args=False), 1, validate_args=False)


class _StandardNormal(Independent):
    """``N(0, I)`` with a three-operation ``log_prob`` (it is evaluated at every step)."""

    def log_prob(self, value):
        dim = value.shape[-1]
        return -0.5 * (value * value).sum(-1) - 0.5 * dim * math.log(2 * math.pi)


def standard_normal(loc, scale):
    """``N(0, I)`` over the last dimension; ``loc``/``scale`` are zeros/ones buffers."""
    return _StandardNormal(Normal(loc, scale, validate_args=False), 1, validate_args=False)

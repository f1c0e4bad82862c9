"""What the VAE asks of a latent prior and of an aligner: two base classes and their hooks.

The VAE, the network builder, the training loop and the scoring code talk to a prior or
an aligner only through these hooks. A new prior subclasses :class:`PriorModule` and
writes :meth:`~PriorModule.forward`; a new aligner subclasses :class:`AlignerModule` and
writes :meth:`~AlignerModule.predict_log_density` and :meth:`~AlignerModule.penalty`.
Every other hook has a default that is right for a prior or aligner without the feature,
and is overridden only by those that have it (a closed-form KL, pseudo-inputs encoded
with the mini-batch, a loss of the aligner's own, a projection fitted on the data).

The public side is a parameter object (``skdivae.priors`` / ``skdivae.aligners``): a
scikit-learn-style object holding settings whose ``build(...)`` returns one of these
modules. ``docs/user_guide.md`` (section 9) writes a Student-t prior from this contract
alone, and lists the names the package uses for each concept.
"""

import threading

import torch
from torch import nn

#: Monte Carlo draws for the KL term when no closed form exists (the authors' value).
KL_SAMPLES = 50

#: Held while torch's global RNG is reseeded and restored (building a network, sampling a
#: distribution that only samples from the global RNG), so threads do not interleave.
#: Re-entrant: a prior's or aligner's ``build`` (user code, run under it) may itself sample
#: or fit a DiVAE in the same thread.
GLOBAL_RNG_LOCK = threading.RLock()


class PriorModule(nn.Module):
    """A latent prior ``p_Z``: ``forward(encoder)`` returns a torch ``Distribution``.

    ``encoder`` is the VAE's encoder (a prior built from encoded pseudo-inputs
    uses it; others ignore it). The distribution needs ``log_prob``; sampling
    and the KL term go through the hooks below.
    """

    def forward(self, encoder):  # the one hook without a default
        """``p_Z`` as a torch ``Distribution`` over latent vectors (event shape ``(L,)``)."""
        raise NotImplementedError(
            f"{type(self).__name__} must define forward(encoder), returning p_Z as a "
            "torch.distributions.Distribution over latent vectors (the contract in "
            "skdivae.priors)."
        )

    # -- the KL term ------------------------------------------------------------
    def kl_draws(self):
        """Reparameterised draws of ``q`` that the training step's KL needs (0: none)."""
        return KL_SAMPLES

    def kl(self, q, p, z):
        """``KL(q || p)`` per row, from draws ``z`` (S, n, L) of ``q`` (``None`` when
        :meth:`kl_draws` is 0). The default is the Monte Carlo estimate."""
        return (q.log_prob(z) - p.log_prob(z)).mean(0)

    def kl_and_log_prob(self, q, p, z_kl, z):
        """``(kl(q, p, z_kl), p.log_prob(z))``: a training step that aligns needs both,
        and a prior that computes them in one pass overrides this."""
        return self.kl(q, p, z_kl), p.log_prob(z)

    def score_kl(self, q, p, points):
        """The KL term of the deterministic ELBO used for scoring, with the posterior's
        sigma points ``points`` (2L, n, L) standing in for random draws."""
        return self.kl(q, p, points)

    # -- encoding and sampling ---------------------------------------------------
    def joint_inputs(self):
        """Inputs to encode together with each mini-batch (pseudo-inputs), or ``None``."""
        return None

    def from_encoded(self, loc, scale):
        """The prior from the encoder's output at :meth:`joint_inputs`."""
        raise NotImplementedError(f"{type(self).__name__} encodes no inputs of its own.")

    def sample(self, p, n_samples, generator):
        """``n_samples`` draws of ``p`` from ``generator`` (the global RNG is left as it
        was). The default seeds torch's global RNG from ``generator`` under a lock and
        restores it, for distributions that only sample from the global RNG."""
        seed = int(torch.randint(2**62, (), generator=generator))
        with GLOBAL_RNG_LOCK, torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            return p.sample((n_samples,))

    def constant(self, p):
        """``p`` with no gradient path to this prior's parameters (the base density of
        an aligner's own loss, which must not train the prior)."""
        return detach_distribution(p)

    def scoring_width(self, n_latent):
        """Numbers per row in the widest intermediate of ``log_prob`` (sizes scoring chunks)."""
        return n_latent

    # -- starting values ------------------------------------------------------------
    def init_random(self, generator):
        """Draw random starting values from ``generator`` (none by default)."""

    def init_from_data(self, X_std, generator):
        """Start from the standardised training rows ``X_std`` (nothing by default)."""


class AlignerModule(nn.Module):
    """An aligner: maps the log-prior of a code to a log-density in rho's units and
    penalises its distance to rho.

    Class attributes (override where they differ):

    - ``point``: where a training step reads the log-prior, ``"sample"`` (the
      reparameterised draw) or ``"mean"`` (the posterior mean, where scoring reads it);
    - ``moves_codes``: the penalty's gradient reaches the encoder through the code
      (``False``: the code is read as a constant, so only the prior's parameters and the
      aligner's own map learn from the penalty);
    - ``needs_input``: :meth:`predict_log_density` reads the standardised input
      ``x_std`` (when no precomputed ``log_det`` is given);
    - ``learning_rate`` and ``update_every``: for an aligner with parameters of its own
      (:meth:`own_parameters`), their optimiser's rate and how many VAE mini-batches
      make one of its steps.
    """

    point = "sample"
    moves_codes = True
    needs_input = False
    learning_rate = None
    update_every = 1

    def predict_log_density(self, log_prior, x_std=None, log_det=None):  # pragma: no cover
        """The aligned log-density from ``log_prior`` = ``log p_Z(z)`` per row."""
        raise NotImplementedError

    def penalty(self, pred, target, weight):  # pragma: no cover
        """Scalar penalty between ``pred`` and rho's ``target``, with precision ``weight``."""
        raise NotImplementedError

    def calibrate(self, log_prior):
        """The log-prior at the posterior mean in rho's units, for scoring (identity by
        default: override it to apply what :meth:`predict_log_density` applies, for an
        aligner whose map does not read ``x_std`` or ``log_det``)."""
        return log_prior

    def own_parameters(self):
        """Parameters trained by :meth:`auxiliary_loss` with an optimiser of their own, and
        by nothing else (none by default)."""
        return []

    def auxiliary_loss(self, x_std, prior):
        """``(loss, log_det)``: the loss of :meth:`own_parameters` on a chunk, with
        ``prior`` a constant, and a per-row offset the VAE steps reuse."""
        raise NotImplementedError(f"{type(self).__name__} has no loss of its own.")

    def init_random(self, generator):
        """Draw random starting values from ``generator`` (none by default)."""

    def init_from_data(self, X_std, generator):
        """Fit anything the aligner reads from the standardised training rows (nothing)."""


def detach_distribution(p):
    """A torch distribution rebuilt from its detached parameters (``Independent`` kept)."""
    if isinstance(p, torch.distributions.Independent):
        return torch.distributions.Independent(
            detach_distribution(p.base_dist), p.reinterpreted_batch_ndims, validate_args=False
        )
    params = {name: getattr(p, name) for name in p.arg_constraints if name in p.__dict__}
    if not any(torch.is_tensor(v) and v.requires_grad for v in params.values()):
        return p
    return type(p)(**{k: v.detach() if torch.is_tensor(v) else v for k, v in params.items()},
                   validate_args=False)

"""The VAE module of DiVAE: encoder, decoder, prior and aligner, and every loss term.

The same methods serve training and scoring, so the two cannot drift apart.
"""

import math

import torch
from torch import nn

from .distributions import bernoulli, diag_normal
from .workspace import Workspace, is_plain_linear, mlp_into

#: Where the deterministic ELBO evaluates its reconstruction term (``elbo``).
RECON_POINTS = "sigma"
_LOGVAR_RANGE = (-16.0, 10.0)


def _check_per_row(value, n_rows, name):
    """A prior's per-row term must be one value per row (a clear error, not a broadcast)."""
    if value.shape != (n_rows,):
        raise ValueError(
            f"the prior's {name} has shape {tuple(value.shape)} for {n_rows} rows, not one "
            "value per row: a prior's log_prob must return shape (n_rows,), e.g. a "
            "distribution wrapped in torch.distributions.Independent (the contract in "
            "skdivae.priors)."
        )


def reparameterized_sample(q, prefix, generator):
    """``loc + scale * eps`` for a diagonal Gaussian ``q``, with ``eps`` from ``generator``."""
    loc, scale = q.base_dist.loc, q.base_dist.scale
    eps = torch.randn((*prefix, *loc.shape), generator=generator, dtype=loc.dtype, device=loc.device)
    return loc + scale * eps


class Encoder(nn.Module):
    """MLP with a mean head and a log-variance head; returns ``(loc, scale)``."""

    def __init__(self, mlp, n_latent):
        super().__init__()
        self.mlp = mlp
        self.n_latent = n_latent

    def forward(self, x):
        out = self.mlp(x)
        loc, logvar = out[..., : self.n_latent], out[..., self.n_latent :]
        return loc, torch.exp(0.5 * logvar.clamp(*_LOGVAR_RANGE))


def _note_identity_after_load(module, incompatible_keys):
    """Loaded buffers may change the standardisation: recompute the identity flag."""
    module._note_identity()


class VAEModule(nn.Module):
    """Encoder + decoder + prior (+ aligner), working on raw features.

    Inputs are standardised with the ``center`` / ``scale`` buffers before the
    encoder; a Gaussian decoder predicts in standardised units and its
    distribution is mapped back, so every log-likelihood is in the units of
    the raw data.

    Parameters
    ----------
    encoder : Encoder
    decoder : nn.Module
        Maps latents to ``n_features`` outputs (means or logits).
    prior : PriorModule
        ``forward(encoder) -> Distribution`` over the latent space, and the hooks of
        ``contracts.PriorModule`` (KL, sampling, joint encoding, detaching).
    aligner : AlignerModule or None
        ``None`` trains a plain VAE.
    likelihood : {"gaussian", "bernoulli"}
    center, scale : Tensor of shape (n_features,)
    decoder_std : float or None
        Fixed standard deviation of the Gaussian decoder, in raw units;
        ``None`` learns one per feature.
    """

    def __init__(self, encoder, decoder, prior, aligner, likelihood, center, scale, decoder_std=None):
        super().__init__()
        self.encoder = encoder
        self.decoder = decoder
        self.prior = prior
        self.aligner = aligner
        self.likelihood = likelihood
        self.register_buffer("center", center)
        self.register_buffer("scale", scale)
        self._note_identity()
        self.register_load_state_dict_post_hook(_note_identity_after_load)
        n_features = center.shape[0]
        self.fixed_noise = decoder_std is not None  # a fixed std is used as given
        if likelihood == "gaussian" and decoder_std is None:
            self.log_noise = nn.Parameter(torch.zeros(n_features))
        elif likelihood == "gaussian":
            # in standardised units, so that noise * scale is decoder_std in raw units
            self.register_buffer("log_noise", math.log(decoder_std) - torch.log(scale))

    @torch.no_grad()
    def set_standardization(self, center, scale):
        """Replace the ``center`` / ``scale`` buffers (same shape; the module's dtype)."""
        self.center.copy_(torch.as_tensor(center, dtype=self.center.dtype))
        self.scale.copy_(torch.as_tensor(scale, dtype=self.scale.dtype))
        self._note_identity()

    def _note_identity(self):
        # Training runs on data standardised beforehand, with identity buffers: skip the no-ops.
        # (A skeleton on the meta device holds no values; loading weights notes them again.)
        self.identity_standardization = not self.center.is_meta and bool(
            (self.center == 0).all() and (self.scale == 1).all()
        )

    # -- distributions ---------------------------------------------------
    def standardize(self, x):
        if self.identity_standardization:
            return x
        return (x - self.center) / self.scale

    def posterior(self, x):
        """q(z | x) as a diagonal Gaussian."""
        loc, scale = self.encoder(self.standardize(x))
        return diag_normal(loc, scale)

    def posterior_mean(self, x):
        """Mean of q(z | x)."""
        return self.encoder(self.standardize(x))[0]

    def prior_distribution(self):
        """p_Z as a torch Distribution."""
        p = self.prior(self.encoder)
        if not isinstance(p, torch.distributions.Distribution):
            raise TypeError(
                f"the prior {type(self.prior).__name__}'s forward returned "
                f"{type(p).__name__}, not a torch.distributions.Distribution over latent "
                "vectors (the contract in skdivae.priors)."
            )
        return p

    def likelihood_distribution(self, z):
        """p(x | z) in raw units."""
        out = self.decoder(z)
        if self.likelihood == "bernoulli":
            return bernoulli(out)
        log_noise = self.log_noise if self.fixed_noise else self.log_noise.clamp(-7.0, 5.0)
        noise = torch.exp(log_noise)
        return diag_normal(out * self.scale + self.center, noise * self.scale)

    def decode_mean(self, z):
        """Mean of p(x | z)."""
        return self.likelihood_distribution(z).mean

    def residuals(self, x):
        """Per-feature residuals of ``x`` against its reconstruction at the posterior
        mean: ``(x - mean) / std`` for a Gaussian decoder, ``x - p`` for Bernoulli."""
        dist = self.likelihood_distribution(self.posterior_mean(x)).base_dist
        if self.likelihood == "bernoulli":
            return x - dist.mean
        return (x - dist.loc) / dist.scale

    # -- loss terms ------------------------------------------------------
    def kl_draws(self, q, generator):
        """The draws of ``q`` the prior's KL needs in a training step (``None`` if none)."""
        n_draws = self.prior.kl_draws()
        return reparameterized_sample(q, (n_draws,), generator) if n_draws else None

    def kl(self, q, p, generator=None):
        """KL(q || p) per sample, as the prior computes it (draws from ``generator``)."""
        return self.prior.kl(q, p, self.kl_draws(q, generator))

    def sample_prior(self, n_samples, generator=None):
        """``n_samples`` draws of p_Z, from ``generator`` (the global RNG is not used)."""
        return self.prior.sample(self.prior_distribution(), n_samples, generator)

    def loss(
        self,
        x,
        target=None,
        weight=None,
        beta=1.0,
        alignment_weight=1.0,
        log_det=None,
        elbo_weight=None,
        generator=None,
        probes=None,
    ):
        """Mini-batch objective and its terms.

        ``total = mean(recon) + beta * mean(KL) + alignment_weight * R``, with
        ``R`` the aligner's penalty between its predicted log-density and
        ``target``, with precision weights ``weight = 1 / max(err, 1e-3)``
        (computed once per fit). ``log_det`` is the flow aligner's fixed
        per-sample offset, when already computed. ``elbo_weight`` (0/1 per
        sample) leaves samples out of the reconstruction and KL means.
        Random draws come from ``generator`` (torch's global RNG when ``None``).
        ``probes`` (``(rows, target, weight)``, or ``None``): rows off the data that
        are encoded with ``x`` and aligned with it, never decoded (``_probes.py``).
        """
        aligning = self.aligner is not None and target is not None
        probes = probes if aligning else None
        n = x.shape[0]
        x_std = self.standardize(x if probes is None else torch.cat([x, probes[0]]))
        q, p = self._posterior_and_prior(x_std)
        if probes is not None:  # one encoder pass; the probes' posterior kept apart
            loc, scale = q.base_dist.loc, q.base_dist.scale
            q, q_probe = diag_normal(loc[:n], scale[:n]), diag_normal(loc[n:], scale[n:])
            x_std = x_std[:n]
        if p.event_shape != q.event_shape:
            raise ValueError(
                f"the prior's distribution has event shape {tuple(p.event_shape)}, not "
                f"{tuple(q.event_shape)} (one latent vector): wrap a per-coordinate "
                "distribution in torch.distributions.Independent(..., 1) (the contract in "
                "skdivae.priors)."
            )
        z = reparameterized_sample(q, (), generator)
        recon_i = -self.log_likelihood(z, x, x_std)
        if aligning:
            z_align = q.mean if self.aligner.point == "mean" else z
            if not getattr(self.aligner, "moves_codes", True):
                z_align = z_align.detach()
            kl_i, log_prior = self.prior.kl_and_log_prob(
                q, p, self.kl_draws(q, generator), z_align
            )
        else:
            kl_i = self.kl(q, p, generator)
        _check_per_row(kl_i, x.shape[0], "KL")
        if aligning:
            _check_per_row(log_prior, x.shape[0], "log_prob")
        if elbo_weight is None:
            recon, kl = recon_i.mean(), kl_i.mean()
        else:
            total_weight = elbo_weight.sum().clamp_min(1.0)
            recon = (elbo_weight * recon_i).sum() / total_weight
            kl = (elbo_weight * kl_i).sum() / total_weight
        total = recon + beta * kl
        align = torch.zeros((), dtype=x.dtype, device=x.device)
        if aligning:
            x_std = x_std if log_det is None and self.aligner.needs_input else None
            pred = self.aligner.predict_log_density(log_prior, x_std, log_det)
            if pred.shape != target.shape:  # (n, 1) against (n,) would broadcast to (n, n)
                raise ValueError(
                    f"the aligner's predict_log_density returned shape {tuple(pred.shape)} "
                    f"for {target.shape[0]} rows, not one value per row {tuple(target.shape)} "
                    "(the contract in skdivae.aligners)."
                )
            if probes is not None:
                z_probe = q_probe.mean if self.aligner.point == "mean" \
                    else reparameterized_sample(q_probe, (), generator)
                if not getattr(self.aligner, "moves_codes", True):
                    z_probe = z_probe.detach()
                probe_pred = self.aligner.predict_log_density(p.log_prob(z_probe), None, None)
                pred = torch.cat([pred, probe_pred])
                target, weight = torch.cat([target, probes[1]]), torch.cat([weight, probes[2]])
            align = self.aligner.penalty(pred, target, weight)
            if not torch.is_tensor(align) or align.ndim != 0:
                raise ValueError(
                    f"the aligner's penalty returned {type(align).__name__} of shape "
                    f"{tuple(getattr(align, 'shape', ()))}, not a scalar tensor "
                    "(the contract in skdivae.aligners)."
                )
            total = total + alignment_weight * align
        return {"loss": total, "recon": recon, "kl": kl, "align": align}

    def _posterior_and_prior(self, x_std):
        """``(q(z | x), p_Z)``; the prior's joint inputs (a VampPrior's pseudo-inputs) go
        through the encoder in the same pass as ``x_std``."""
        pseudo = self.prior.joint_inputs()
        if pseudo is None:
            return diag_normal(*self.encoder(x_std)), self.prior_distribution()
        n = x_std.shape[0]
        loc, scale = self.encoder(torch.cat([x_std, pseudo.to(x_std.dtype)]))
        return diag_normal(loc[:n], scale[:n]), self.prior.from_encoded(loc[n:], scale[n:])

    def auxiliary_loss(self, x):
        """The aligner's own loss (the flow's likelihood) and its detached log-det.

        The prior enters as a constant: it is evaluated without gradient
        tracking, so the flow's loss never trains it.
        """
        if self.aligner is None or not self.aligner.own_parameters():
            return None
        with torch.no_grad():
            p = self.prior.constant(self.prior_distribution())
        return self.aligner.auxiliary_loss(self.standardize(x), p)

    # -- deterministic scores ----------------------------------------------
    def log_prior_at_mean(self, x):
        """``log p_Z(mu(x))``: the paper's anomaly score (higher = more normal)."""
        return self.prior_distribution().log_prob(self.posterior(x).mean)

    def aligned_log_prior(self, x):
        """The log-prior at the posterior mean in the teacher's units (what is aligned)."""
        log_prior = self.log_prior_at_mean(x)
        return log_prior if self.aligner is None else self.aligner.calibrate(log_prior)

    def log_likelihood(self, z, x, x_std=None):
        """``log p(x | z)`` in raw units; for a Gaussian decoder one fused expression on
        standardised residuals (``x_std``: ``standardize(x)``, when already computed)."""
        out = self.decoder(z)
        if self.likelihood == "bernoulli":
            return bernoulli(out).log_prob(x)
        log_noise, log_norm = self._gaussian_noise(x.shape[-1])
        x_std = self.standardize(x) if x_std is None else x_std
        resid = (x_std - out) * torch.exp(-log_noise)
        return -0.5 * (resid * resid).sum(-1) - log_norm

    def _gaussian_noise(self, n_features):
        """``(log sigma, log-normaliser)`` of the Gaussian decoder: the log noise scale in
        standardised units (clamped unless fixed) and the per-row constant of ``-log p``
        in raw units."""
        log_noise = self.log_noise if self.fixed_noise else self.log_noise.clamp(-7.0, 5.0)
        log_norm = log_noise.sum() + 0.5 * n_features * math.log(2 * math.pi)
        if not self.identity_standardization:
            log_norm = log_norm + torch.log(self.scale).sum()
        return log_noise, log_norm

    def _sigma_log_likelihood(self, z, x, workspace):
        """The mean of :meth:`log_likelihood` over the sigma points ``z`` (2L, n, L) for a
        Gaussian ``nn.Sequential`` decoder, without autograd, its intermediates written
        into ``workspace``'s buffers.

        A plain last linear layer takes the noise scale and ``x`` into its weights and
        bias, so that the standardised residuals come out of one product and one addition
        and their squared norms out of one reduction: two passes over the ``2L n``
        outputs where the decoder's output followed by the residual's arithmetic takes
        five.
        """
        n_points, n_rows, n_latent = z.shape
        log_noise, log_norm = self._gaussian_noise(x.shape[-1])
        inv_noise = torch.exp(-log_noise)
        x_std = self.standardize(x)
        last = self.decoder[-1]
        fuse_last = is_plain_linear(last)
        body = self.decoder[:-1] if fuse_last else self.decoder
        h, owned = mlp_into(body, z.reshape(-1, n_latent), workspace, "decoder")
        if fuse_last:
            shift = x_std.neg() if last.bias is None else last.bias - x_std
            out = workspace.take("decoder-output", h.shape[0], last.out_features, h)
            resid = torch.mm(h, (last.weight * inv_noise.unsqueeze(-1)).T, out=out)
            resid = resid.view(n_points, n_rows, -1).add_(shift.mul_(inv_noise))
        else:  # the decoder's own output (not a buffer of ours: leave it as it is)
            out = h if owned else h.clone()
            resid = out.view(n_points, n_rows, -1).sub_(x_std).mul_(inv_noise)
        squared = torch.linalg.vector_norm(resid, dim=-1).square_()
        return squared.mean(0).mul_(-0.5).sub_(log_norm)

    def sigma_points(self, q):
        """The ``2L`` unscented sigma points ``mu +- sqrt(L) sigma e_i`` of ``q``: (2L, n, L)."""
        loc, scale = q.base_dist.loc, q.base_dist.scale
        n_latent = loc.shape[-1]
        eye = torch.eye(n_latent, dtype=loc.dtype, device=loc.device)
        offsets = math.sqrt(n_latent) * torch.cat([eye, -eye])  # (2L, L)
        return loc.unsqueeze(0) + offsets.unsqueeze(1) * scale.unsqueeze(0)

    def elbo(self, x, recon_points=RECON_POINTS, workspace=None):
        """Deterministic ELBO per sample, without the alignment term.

        No random numbers are drawn. The reconstruction term
        ``E_q[log p(x | z)]`` is taken at the posterior mean
        (``recon_points="mean"``, one decoder pass) or averaged over the ``2L``
        unscented sigma points (``"sigma"``: exact for quadratic integrands,
        2L decoder passes); ``RECON_POINTS`` is the default, chosen in
        ``docs/results/elbo_points.md``. The KL term is the prior's ``score_kl``
        (closed form for N(0, I); a mixture prior's ``kl_estimator``), with the
        sigma points standing in for draws (they need no decoder pass). Without autograd,
        a Gaussian ``nn.Sequential`` decoder's term comes from
        :meth:`_sigma_log_likelihood`, its intermediates in the buffers of
        ``workspace`` (scoring passes one that it reuses from chunk to chunk; else a
        fresh one).
        """
        q = self.posterior(x)
        p = self.prior_distribution()
        # the reconstruction term's points, which stand in for draws where the KL takes some
        needs_points = recon_points != "mean" or self.prior.kl_draws() > 0
        z = self.sigma_points(q) if needs_points else None
        if recon_points == "mean":
            recon = self.log_likelihood(q.base_dist.loc, x)
        elif (self.likelihood == "gaussian" and isinstance(self.decoder, nn.Sequential)
                and not torch.is_grad_enabled()):
            recon = self._sigma_log_likelihood(z, x, workspace or Workspace())
        else:
            recon = self.log_likelihood(z, x).mean(0)
        return recon - self.prior.score_kl(q, p, z)

    def elbo_at_mean(self, x):
        """:meth:`elbo` with the reconstruction term at the posterior mean: one decoder
        pass per row instead of ``2L`` (``anomaly_score="elbo_at_mean"``)."""
        return self.elbo(x, recon_points="mean")

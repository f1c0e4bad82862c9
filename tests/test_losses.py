"""Each term of the DiVAE objective checked on its own."""

import math

import pytest
import torch
from torch.distributions import Independent, Normal

from skdivae._nn.aligners import Direct, alignment_penalty
from skdivae._nn.priors import GaussianMixture, StandardNormal, Vamp
from skdivae._nn.vae import VAEModule
from skdivae._build import build_module
from skdivae.aligners import DirectAligner
from skdivae.priors import GaussianMixturePrior, StandardNormalPrior


def test_penalty_zero_when_aligned_and_weighted_by_inverse_error():
    target = torch.tensor([1.0, -2.0, 0.5])
    err = torch.tensor([0.1, 0.2, 1.0])
    assert alignment_penalty(target, target, err) < 1e-5
    pred = target + torch.tensor([0.5, 0.0, 0.0])
    # Huber(0.5) = 0.125, weight 1/0.1 = 10 -> sqrt(10 * 0.125 / 3)
    assert alignment_penalty(pred, target, err).item() == pytest.approx(math.sqrt(1.25 / 3), 1e-5)
    # Beyond delta the penalty grows linearly (robust), and errors are floored at 1e-3.
    big = target + torch.tensor([3.0, 0.0, 0.0])
    tiny_err = torch.tensor([0.0, 1.0, 1.0])
    expected = math.sqrt(1000 * (3.0 - 0.5) / 3)
    assert alignment_penalty(big, target, tiny_err).item() == pytest.approx(expected, 1e-5)


def test_penalty_is_non_negative_and_has_finite_gradient_at_zero():
    pred = torch.zeros(4, requires_grad=True)
    value = alignment_penalty(pred, torch.zeros(4), torch.ones(4))
    value.backward()
    assert value >= 0 and torch.isfinite(pred.grad).all()


def _module(prior, aligner=None, likelihood="gaussian", n_features=3):
    torch.manual_seed(0)
    return build_module(
        n_features=n_features, n_latent=2, hidden_layer_sizes=(8,), activation="relu",
        prior=prior, aligner=aligner, likelihood=likelihood,
        center=torch.zeros(n_features).numpy(), scale=torch.ones(n_features).numpy(),
        density_dim=2, X_train=torch.randn(20, n_features), generator=torch.Generator(),
    ).double()


def test_loss_terms_add_up_with_weights():
    module = _module(StandardNormalPrior(), DirectAligner())
    x = torch.randn(16, 3, dtype=torch.float64)
    target, err = torch.randn(16, dtype=torch.float64), torch.ones(16, dtype=torch.float64)
    torch.manual_seed(1)
    terms = module.loss(x, target, err, beta=0.3, alignment_weight=2.0)
    expected = terms["recon"] + 0.3 * terms["kl"] + 2.0 * terms["align"]
    assert terms["loss"].item() == pytest.approx(expected.item())
    plain = _module(StandardNormalPrior(), None)
    assert plain.loss(x, target, err)["align"].item() == 0.0


def test_gaussian_reconstruction_term_matches_formula():
    module = _module(StandardNormalPrior())
    z = torch.randn(5, 2, dtype=torch.float64)
    x = torch.randn(5, 3, dtype=torch.float64)
    mean = module.decoder(z)
    sigma = torch.exp(module.log_noise)
    manual = (-0.5 * ((x - mean) / sigma) ** 2 - torch.log(sigma) - 0.5 * math.log(2 * math.pi)).sum(1)
    assert torch.allclose(module.likelihood_distribution(z).log_prob(x), manual)


def test_bernoulli_reconstruction_accepts_grey_levels():
    module = _module(StandardNormalPrior(), likelihood="bernoulli")
    z = torch.randn(4, 2, dtype=torch.float64)
    x = torch.rand(4, 3, dtype=torch.float64)
    logits = module.decoder(z)
    manual = -torch.nn.functional.binary_cross_entropy_with_logits(logits, x, reduction="none").sum(1)
    assert torch.allclose(module.likelihood_distribution(z).log_prob(x), manual)


def test_closed_form_kl_for_normal_prior():
    module = _module(StandardNormalPrior())
    q = Independent(Normal(torch.tensor([[1.0, 0.0]]), torch.tensor([[0.5, 2.0]])), 1)
    manual = 0.5 * sum(s**2 + m**2 - 1 - math.log(s**2) for m, s in [(1.0, 0.5), (0.0, 2.0)])
    assert module.kl(q, module.prior_distribution()).item() == pytest.approx(manual, 1e-6)


def test_monte_carlo_kl_for_mixture_prior_is_close_to_truth():
    # A one-component mixture equals a Gaussian, whose KL is known in closed form.
    prior = GaussianMixture(2, 1)
    module = _module(GaussianMixturePrior(1))
    module.prior = prior.double()
    q = Independent(Normal(torch.zeros(2000, 2, dtype=torch.float64), torch.ones(2000, 2, dtype=torch.float64) * 0.7), 1)
    p = module.prior_distribution()
    exact = torch.distributions.kl_divergence(q, Independent(p.component_distribution.base_dist, 1)).mean()
    torch.manual_seed(0)
    assert module.kl(q, p).mean().item() == pytest.approx(exact.item(), rel=0.02)


@pytest.mark.parametrize("make", [lambda: StandardNormal(2), lambda: GaussianMixture(2, 3)])
def test_prior_log_prob_normalises(make):
    prior = make().double()
    dist = prior()
    grid = torch.linspace(-8, 8, 321, dtype=torch.float64)
    zz = torch.cartesian_prod(grid, grid)
    mass = dist.log_prob(zz).exp().sum() * (grid[1] - grid[0]) ** 2
    assert mass.item() == pytest.approx(1.0, abs=1e-3)


def test_vamp_prior_uses_the_encoder_and_gets_gradients():
    torch.manual_seed(0)
    module = _module(GaussianMixturePrior(2))
    vamp = Vamp(2, 3, 4).double()
    dist = vamp(module.encoder)
    assert dist.mixture_distribution.logits.shape == (4,)
    dist.log_prob(torch.randn(10, 2, dtype=torch.float64)).sum().backward()
    assert vamp.pseudo_inputs.grad is not None


def test_alignment_gradient_reaches_encoder_and_prior_parameters():
    module = _module(GaussianMixturePrior(3), DirectAligner())
    x = torch.randn(32, 3, dtype=torch.float64)
    terms = module.loss(x, torch.full((32,), 3.0, dtype=torch.float64), torch.ones(32, dtype=torch.float64))
    terms["align"].backward()
    assert module.encoder.mlp[0].weight.grad.abs().sum() > 0
    for name in ["logits", "loc", "raw_scale"]:
        assert getattr(module.prior, name).grad.abs().sum() > 0, name
    assert module.decoder[0].weight.grad is None  # alignment does not touch the decoder


def test_deterministic_elbo_close_to_monte_carlo_elbo():
    module = _module(StandardNormalPrior())
    x = torch.randn(3, 3, dtype=torch.float64)
    q = module.posterior(x)
    torch.manual_seed(0)
    z = q.sample((20000,))
    mc = module.likelihood_distribution(z).log_prob(x).mean(0) - module.kl(q, module.prior_distribution())
    assert torch.allclose(module.elbo(x), mc, atol=0.05 * mc.abs().max().item())
    assert torch.equal(module.elbo(x), module.elbo(x))


def test_direct_aligner_prediction_is_the_log_prior():
    prior = StandardNormal(2)
    z = torch.randn(5, 2)
    log_prior = prior().log_prob(z)
    assert torch.equal(Direct().predict_log_density(log_prior), log_prior)
    assert isinstance(_module(StandardNormalPrior()), VAEModule)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_fused_mixture_log_prob_equals_torch_mixture(dtype):
    from torch.distributions import Categorical, Independent, MixtureSameFamily, Normal

    from skdivae._nn.distributions import diag_normal_mixture

    g = torch.Generator().manual_seed(0)
    logits = torch.randn(5, generator=g, dtype=dtype)
    loc = torch.randn(5, 3, generator=g, dtype=dtype)
    scale = torch.rand(5, 3, generator=g, dtype=dtype) + 0.05
    z = 3 * torch.randn(7, 11, 3, generator=g, dtype=dtype)
    reference = MixtureSameFamily(Categorical(logits=logits), Independent(Normal(loc, scale), 1))
    fused = diag_normal_mixture(logits, loc, scale)
    tol = 1e-5 if dtype == torch.float32 else 1e-12
    torch.testing.assert_close(fused.log_prob(z), reference.log_prob(z), atol=tol, rtol=tol)


def test_lazily_built_mixture_behaves_like_torch_mixture():
    from torch.distributions import Categorical, Independent, MixtureSameFamily, Normal

    from skdivae._nn.distributions import diag_normal_mixture

    g = torch.Generator().manual_seed(1)
    logits = torch.randn(4, generator=g, dtype=torch.float64)
    loc = torch.randn(4, 3, generator=g, dtype=torch.float64)
    scale = torch.rand(4, 3, generator=g, dtype=torch.float64) + 0.1
    reference = MixtureSameFamily(Categorical(logits=logits), Independent(Normal(loc, scale), 1))
    fused = diag_normal_mixture(logits, loc, scale)
    assert fused.batch_shape == reference.batch_shape and fused.event_shape == (3,)
    torch.testing.assert_close(fused.log_weights, reference.mixture_distribution.logits)
    torch.testing.assert_close(fused.mixture_distribution.probs, reference.mixture_distribution.probs)
    assert torch.equal(fused.component_distribution.base_dist.loc, loc)
    torch.testing.assert_close(fused.mean, reference.mean)
    torch.testing.assert_close(fused.variance, reference.variance)
    z = torch.randn(6, 3, generator=g, dtype=torch.float64)
    # torch's own log_prob, on the lazily built parts, agrees with the fused one
    torch.testing.assert_close(MixtureSameFamily.log_prob(fused, z), fused.log_prob(z))
    torch.manual_seed(0)
    draws = fused.sample((5,))
    torch.manual_seed(0)
    assert torch.equal(draws, reference.sample((5,)))
    detached = fused.detach()
    assert not any(t.requires_grad for t in (detached.log_weights, detached.component_loc))


def test_fused_bound_and_log_prior_gradients_match_finite_differences():
    from skdivae._nn.distributions import diag_normal, diag_normal_mixture
    from skdivae._nn.kl import _BoundAndLogProb, mixture_kl_bound

    g = torch.Generator().manual_seed(0)
    d = torch.float64
    log_weights = torch.log_softmax(torch.randn(5, generator=g, dtype=d), -1)
    loc = torch.randn(5, 3, generator=g, dtype=d)
    scale = 0.3 + torch.rand(5, 3, generator=g, dtype=d)
    m, z = torch.randn(7, 3, generator=g, dtype=d), torch.randn(7, 3, generator=g, dtype=d)
    s = 0.2 + torch.rand(7, 3, generator=g, dtype=d)
    args = [a.clone().requires_grad_() for a in (log_weights, loc, scale, m, s, z)]
    assert torch.autograd.gradcheck(_BoundAndLogProb.apply, args)
    # Only one of the outputs used: the other's gradient arrives as zeros.
    assert torch.autograd.gradcheck(lambda *a: _BoundAndLogProb.apply(*a)[1], args)
    bound, log_prob = _BoundAndLogProb.apply(*args)
    p, q = diag_normal_mixture(log_weights, loc, scale), diag_normal(m, s)
    torch.testing.assert_close(bound, mixture_kl_bound(q, p), rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(log_prob, torch.logsumexp(p.joint_log_prob(z), -1))


def test_vamp_pseudo_inputs_share_the_batch_encoder_pass():
    from skdivae.priors import VampPrior

    module = _module(VampPrior(4), DirectAligner())
    x = torch.randn(16, 3, dtype=torch.float64)
    q, p = module._posterior_and_prior(module.standardize(x))
    q_ref, p_ref = module.posterior(x), module.prior_distribution()
    torch.testing.assert_close(q.base_dist.loc, q_ref.base_dist.loc, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(q.base_dist.scale, q_ref.base_dist.scale, rtol=1e-12, atol=1e-12)
    z = torch.randn(5, 2, dtype=torch.float64)
    torch.testing.assert_close(p.log_prob(z), p_ref.log_prob(z), rtol=1e-12, atol=1e-12)
    # The pseudo-inputs still get gradients through the prior.
    module.loss(x, torch.zeros(16), torch.ones(16), generator=torch.Generator())["loss"].backward()
    assert module.prior.pseudo_inputs.grad is not None
    assert module.prior.pseudo_inputs.grad.abs().sum() > 0


def test_mixture_logsumexp_gradients_match_finite_differences():
    from skdivae._nn.distributions import _MixtureLogSumExp

    g = torch.Generator().manual_seed(0)
    log_weights = torch.log_softmax(torch.randn(5, generator=g, dtype=torch.float64), -1)
    loc = torch.randn(5, 4, generator=g, dtype=torch.float64)
    scale = 0.3 + torch.rand(5, 4, generator=g, dtype=torch.float64)
    V = torch.randn(2, 3, 4, generator=g, dtype=torch.float64)
    U = V * V + torch.rand(2, 3, 4, generator=g, dtype=torch.float64)
    args = [a.requires_grad_() for a in (log_weights, loc, scale, U, V)]
    assert torch.autograd.gradcheck(_MixtureLogSumExp.apply, args)
    # Forward: the plain logsumexp over components of the same quadratic forms.
    precision = scale.pow(-2)
    scores = (
        (-0.5 * U.unsqueeze(-2) * precision + V.unsqueeze(-2) * loc * precision).sum(-1)
        + log_weights - 0.5 * (loc * loc * precision).sum(-1) - torch.log(scale).sum(-1)
        - 2 * math.log(2 * math.pi)
    )
    torch.testing.assert_close(_MixtureLogSumExp.apply(*args), torch.logsumexp(scores, -1))


@pytest.mark.parametrize("point", ["sample", "mean"])
def test_training_step_computes_bound_and_log_prior_in_one_call(point, monkeypatch):
    from skdivae._nn import kl as kl_module
    from skdivae._nn.vae import reparameterized_sample

    module = _module(GaussianMixturePrior(3), DirectAligner(point=point))
    x = torch.randn(16, 3, dtype=torch.float64)
    target, weight = torch.randn(16, dtype=torch.float64), torch.ones(16, dtype=torch.float64)
    calls = []
    original = kl_module.mixture_logsumexp_forward
    monkeypatch.setattr(kl_module, "mixture_logsumexp_forward",
                        lambda *args: calls.append(args[3].shape) or original(*args))
    terms = module.loss(x, target, weight, generator=torch.Generator().manual_seed(0))
    assert calls == [(32, 4)]  # one log-sum-exp over the stacked rows [U | V]
    # The same terms as the separate KL bound and log-prior.
    monkeypatch.undo()
    q, p = module.posterior(x), module.prior_distribution()
    z = reparameterized_sample(q, (), torch.Generator().manual_seed(0))
    z_align = q.mean if point == "mean" else z
    kl = module.kl(q, p).mean()
    pred = module.aligner.predict_log_density(p.log_prob(z_align))
    align = module.aligner.penalty(pred, target, weight)
    torch.testing.assert_close(terms["kl"], kl)
    torch.testing.assert_close(terms["align"], align)


@pytest.mark.parametrize("prior", [GaussianMixturePrior(3), "vamp"])
@pytest.mark.parametrize("aligner", [DirectAligner(), "flow", None])
def test_training_step_builds_no_categorical(prior, aligner, monkeypatch):
    """A training step needs the mixture's tensors only: its torch ``Categorical`` (built
    on first use) is never made, not even by a check for a mixture."""
    from skdivae._nn import distributions
    from skdivae.aligners import FlowAligner
    from skdivae.priors import VampPrior

    prior = VampPrior(3) if prior == "vamp" else prior
    aligner = FlowAligner(n_layers=2) if aligner == "flow" else aligner
    module = _module(prior, aligner)
    x = torch.randn(16, 3, dtype=torch.float64)
    target, weight = torch.randn(16, dtype=torch.float64), torch.ones(16, dtype=torch.float64)
    built = []
    original = distributions.Categorical
    monkeypatch.setattr(distributions, "Categorical",
                        lambda *a, **k: built.append(1) or original(*a, **k))
    g = torch.Generator().manual_seed(0)
    aux = module.auxiliary_loss(x)
    log_det = None if aux is None else aux[1]
    module.loss(x, target, weight, log_det=log_det, generator=g)["loss"].backward()
    if aux is not None:
        aux[0].backward()
    assert built == []
    assert isinstance(module.prior_distribution().mixture_distribution, original)  # on use

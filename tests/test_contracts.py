"""The prior and aligner contracts are open: a prior written here, from the contract
alone, fits, scores, samples and passes scikit-learn's checks."""

import numpy as np
import pytest
import torch
from sklearn.base import BaseEstimator
from sklearn.utils.estimator_checks import parametrize_with_checks
from torch.distributions import Independent, StudentT

from skdivae import DiVAE
from skdivae.priors import PriorModule

FAST = dict(n_components=2, hidden_layer_sizes=(8,), max_iter=3, random_state=0)


class StudentTModule(PriorModule):
    """A Student-t prior with a learnable location and scale; every hook but
    ``forward`` keeps its default (Monte Carlo KL, sampling, detaching)."""

    def __init__(self, n_latent, df):
        super().__init__()
        self.df = df
        self.loc = torch.nn.Parameter(torch.zeros(n_latent))
        self.log_scale = torch.nn.Parameter(torch.zeros(n_latent))

    def forward(self, encoder=None):
        return Independent(StudentT(self.df, self.loc, self.log_scale.exp()), 1)


class StudentTPrior(BaseEstimator):
    def __init__(self, df=4.0):
        self.df = df

    def build(self, *, n_latent, n_features):
        return StudentTModule(n_latent, float(self.df))


@pytest.fixture(scope="module")
def X():
    return np.random.default_rng(0).standard_t(4, size=(200, 4))


@pytest.mark.parametrize("aligner", ["direct", "flow", None])
def test_a_new_prior_fits_scores_and_samples(X, aligner):
    est = DiVAE(prior=StudentTPrior(), aligner=aligner, **FAST).fit(X)
    for score in ["elbo", "log_prior", "min(elbo,log_prior)"]:
        assert np.all(np.isfinite(est.set_params(anomaly_score=score).score_samples(X)))
    draws = est.sample(50, random_state=1)
    assert draws.shape == (50, 4) and np.all(np.isfinite(draws))
    np.testing.assert_array_equal(draws, est.sample(50, random_state=1))  # deterministic
    before = torch.random.get_rng_state()
    est.sample(5, random_state=2)
    assert torch.equal(torch.random.get_rng_state(), before)  # the global RNG is untouched
    assert est.module_.prior.loc.requires_grad  # learnable, and trained by the VAE step


def test_the_flow_loss_does_not_train_the_new_prior(X):
    est = DiVAE(prior=StudentTPrior(), aligner="flow", **FAST).fit(X)
    module = est.module_.float().train()
    module.zero_grad(set_to_none=True)
    aux, _ = module.auxiliary_loss(torch.as_tensor(X[:32], dtype=torch.float32))
    aux.backward()
    assert module.prior.loc.grad is None and module.prior.log_scale.grad is None


@parametrize_with_checks([DiVAE(prior=StudentTPrior(), **FAST)])
def test_a_new_prior_passes_the_estimator_checks(estimator, check):
    check(estimator)


@pytest.mark.parametrize("broken", ["column", "vector penalty"])
def test_an_aligner_off_the_contract_is_named_in_training(X, broken):
    # predict_log_density of shape (n, 1) against targets of shape (n,) broadcast to an
    # (n, n) penalty and trained on it, silently.
    from skdivae.aligners import AlignerModule

    class Off(AlignerModule):
        point = "mean"

        def predict_log_density(self, log_prior, x_std=None, log_det=None):
            return log_prior[:, None] if broken == "column" else log_prior

        def penalty(self, pred, target, weight):
            squared = (pred - target) ** 2
            return squared if broken == "vector penalty" else squared.mean()

    class OffAligner(BaseEstimator):
        def build(self, *, n_latent, n_features, density_dim):
            return Off()

    message = "predict_log_density returned shape" if broken == "column" else "penalty returned"
    est = DiVAE(**FAST, aligner=OffAligner())
    with pytest.raises(ValueError, match=message):
        est.fit(X)
    assert not hasattr(est, "module_")


def test_a_prior_without_one_event_per_latent_vector_is_named(X):
    # StudentT without Independent: event shape () instead of (L,), which torch reported
    # as a size mismatch deep in the KL term.
    class PerCoordinate(StudentTModule):
        def forward(self, encoder=None):
            return StudentT(self.df, self.loc, self.log_scale.exp())

    class PerCoordinatePrior(StudentTPrior):
        def build(self, *, n_latent, n_features):
            return PerCoordinate(n_latent, float(self.df))

    est = DiVAE(prior=PerCoordinatePrior(), **FAST)
    with pytest.raises(ValueError, match="wrap a per-coordinate distribution in"):
        est.fit(X)
    assert not hasattr(est, "module_")


@pytest.mark.parametrize("returned", ["tensor", "no forward"])
def test_a_prior_whose_forward_returns_no_distribution_is_named(X, returned):
    class NotADistribution(PriorModule):
        def forward(self, encoder=None):
            return torch.zeros(2)

    class NoForward(PriorModule):
        pass

    class BrokenPrior(BaseEstimator):
        def build(self, *, n_latent, n_features):
            return NotADistribution() if returned == "tensor" else NoForward()

    est = DiVAE(prior=BrokenPrior(), **FAST)
    error, message = ((TypeError, "forward returned Tensor, not a torch.distributions")
                      if returned == "tensor" else
                      (NotImplementedError, "NoForward must define forward"))
    with pytest.raises(error, match=message):
        est.fit(X)
    assert not hasattr(est, "module_")


def test_an_aligner_whose_calibrate_gives_nan_is_named_not_the_training(X):
    from skdivae.aligners import AlignerModule

    class NaNCalibration(AlignerModule):
        def predict_log_density(self, log_prior, x_std=None, log_det=None):
            return log_prior

        def penalty(self, pred, target, weight):
            return ((pred - target) ** 2 * weight).mean()

        def calibrate(self, log_prior):
            return log_prior * float("nan")

    class NaNAligner(BaseEstimator):
        def build(self, *, n_latent, n_features, density_dim):
            return NaNCalibration()

    est = DiVAE(aligner=NaNAligner(), **FAST)  # the ELBO is the score; fit checks them all
    with pytest.raises(ValueError, match=r"aligner's calibrate \(NaNCalibration\) returns"):
        est.fit(X)
    assert not hasattr(est, "module_")

"""Choosing the alignment weight without labels: the scores and the refit rule."""

import warnings

import numpy as np
import pytest
from sklearn.mixture import GaussianMixture
from sklearn.model_selection import GridSearchCV, KFold
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from skdivae import DiVAE
from skdivae.model_selection import (
    AgreementWithinELBOBudget,
    elbo_per_feature_score,
    label_free_scoring,
    prior_agreement_score,
)

FAST = dict(n_components=2, max_iter=8, hidden_layer_sizes=(16,), random_state=0)


@pytest.fixture(scope="module")
def X():
    rng = np.random.default_rng(0)
    return np.vstack([rng.normal(-2, 1, size=(150, 4)), rng.normal(2, 0.5, size=(150, 4))])


def _results(elbo, agreement):
    return {"mean_test_elbo_per_feature": np.array(elbo, dtype=float),
            "mean_test_prior_agreement": np.array(agreement, dtype=float)}


def test_refit_rule_takes_the_best_agreement_within_the_elbo_budget():
    rule = AgreementWithinELBOBudget(budget=0.05)
    # Candidate 2 agrees best but lost 0.1 nats/feature; candidate 1 is within budget.
    assert rule(_results([-1.00, -1.04, -1.10], [0.5, 0.7, 0.9])) == 1
    # A zero budget keeps only the best ELBO; a wide one only reads agreement.
    assert AgreementWithinELBOBudget(0.0)(_results([-1.00, -1.04, -1.10], [0.5, 0.7, 0.9])) == 0
    assert AgreementWithinELBOBudget(1.0)(_results([-1.00, -1.04, -1.10], [0.5, 0.7, 0.9])) == 2
    # Failed candidates (NaN) are never picked and do not set the budget.
    assert rule(_results([np.nan, -1.04, -1.02], [0.99, 0.7, 0.6])) == 1
    assert repr(rule) == "AgreementWithinELBOBudget(budget=0.05)"


@pytest.mark.parametrize("budget", [-0.1, np.nan, np.inf, "0.05", True])
def test_refit_rule_refuses_a_bad_budget(budget):
    with pytest.raises(ValueError, match="budget"):
        AgreementWithinELBOBudget(budget)(_results([-1.0], [0.5]))


def test_refit_rule_says_what_it_needs():
    with pytest.raises(KeyError, match="label_free_scoring"):
        AgreementWithinELBOBudget()({"mean_test_score": np.array([0.1])})
    with pytest.raises(ValueError, match="failed or scored NaN"):
        AgreementWithinELBOBudget()(_results([np.nan, np.nan], [0.5, 0.6]))


def test_scores_read_a_divae_and_a_pipeline_ending_in_one(X):
    model = DiVAE(**FAST, keep_density=True).fit(X[::2])
    held = X[1::2]
    assert elbo_per_feature_score(model, held) == pytest.approx(model.score(held) / X.shape[1])
    assert 0.0 < prior_agreement_score(model, held) <= 1.0
    pipe = make_pipeline(StandardScaler(), DiVAE(**FAST, keep_density=True)).fit(X[::2])
    assert np.isfinite(elbo_per_feature_score(pipe, held))
    assert -1.0 <= prior_agreement_score(pipe, held) <= 1.0
    assert set(label_free_scoring()) == {"elbo_per_feature", "prior_agreement"}
    assert label_free_scoring() is not label_free_scoring()


def test_scores_refuse_what_they_cannot_read(X):
    with pytest.raises(TypeError, match="DiVAE"):
        elbo_per_feature_score(GaussianMixture(2, random_state=0).fit(X), X)
    light = DiVAE(**FAST).fit(X)
    with pytest.raises(ValueError, match="keep_density=True"):
        prior_agreement_score(light, X)
    heavy = DiVAE(**FAST, keep_density=True).fit(X)
    with pytest.raises(ValueError, match="at least 2"):
        prior_agreement_score(heavy, X[:1])


def test_grid_search_with_the_rule_refits_the_weight_it_reports(X):
    search = GridSearchCV(
        DiVAE(**FAST, keep_density=True), {"alignment_weight": [0.0, 1.0, 10.0]},
        scoring=label_free_scoring(), refit=AgreementWithinELBOBudget(),
        cv=KFold(3, shuffle=True, random_state=0),
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        search.fit(X)
    res = search.cv_results_
    expected = AgreementWithinELBOBudget()(res)
    assert search.best_index_ == expected
    assert search.best_estimator_.alignment_weight == res["params"][expected]["alignment_weight"]
    assert np.all(np.isfinite(res["mean_test_elbo_per_feature"]))
    assert np.all(np.abs(res["mean_test_prior_agreement"]) <= 1.0)

"""choose_alignment_weight: fits one model per weight on part of the rows, judges them on
the rest without labels, and returns the judged fit."""

import numpy as np
import pandas as pd
import pytest
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import StandardScaler

from skdivae import DiVAE
from skdivae.model_selection import choose_alignment_weight

FAST = dict(n_components=2, hidden_layer_sizes=(8,), max_iter=3, random_state=0)


@pytest.fixture
def X():
    rng = np.random.default_rng(0)
    return np.vstack([rng.normal(size=(120, 4)), rng.normal(4, 1, size=(80, 4))])


def test_the_choice_follows_the_rule_and_returns_the_judged_fit(X, no_convergence_warnings):
    est = DiVAE(**FAST)
    choice = choose_alignment_weight(est, X, weights=[0.0, 1.0, 3.0], random_state=0)
    res = choice.results
    assert res["alignment_weight"] == [0.0, 1.0, 3.0]
    elbo, agree = np.array(res["elbo_per_feature"]), np.array(res["prior_agreement"])
    within = elbo >= elbo.max() - 0.05
    assert res["within_budget"] == within.tolist()
    expected = np.flatnonzero(within)[np.argmax(agree[within])]
    assert choice.alignment_weight == res["alignment_weight"][expected]
    assert choice.estimator.alignment_weight == choice.alignment_weight
    # The teacher (training rows) judged the fits, and is not kept unless asked for.
    assert choice.estimator.keep_density is False and choice.estimator.density_ is None
    kept = choose_alignment_weight(DiVAE(**FAST, keep_density=True), X,
                                   weights=[0.0, 1.0, 3.0], random_state=0).estimator
    np.testing.assert_array_equal(kept.score_samples(X), choice.estimator.score_samples(X))
    # The kept model is the one fitted on the non-held-out rows (160 of 200), not a refit.
    assert kept.density_.nn_.n_samples_fit_ == 160
    # The user's estimator is not touched.
    assert est.alignment_weight == 1.0 and est.keep_density is False
    assert not hasattr(est, "module_")


def test_a_zero_budget_keeps_the_best_held_out_elbo(X, no_convergence_warnings):
    choice = choose_alignment_weight(DiVAE(**FAST), X, weights=[0.0, 10.0], elbo_budget=0.0,
                                     random_state=0)
    elbo = choice.results["elbo_per_feature"]
    assert choice.alignment_weight == [0.0, 10.0][int(np.argmax(elbo))]


def test_the_same_random_state_gives_the_same_choice(X, no_convergence_warnings):
    a = choose_alignment_weight(DiVAE(**FAST), X, weights=[0.0, 1.0], random_state=3)
    b = choose_alignment_weight(DiVAE(**FAST), X, weights=[0.0, 1.0], random_state=3)
    assert a.results == b.results and a.alignment_weight == b.alignment_weight
    np.testing.assert_array_equal(a.estimator.score_samples(X), b.estimator.score_samples(X))


def test_a_pipeline_and_a_dataframe(X, no_convergence_warnings):
    frame = pd.DataFrame(X, columns=list("abcd"))
    pipe = make_pipeline(StandardScaler(), DiVAE(**FAST))
    choice = choose_alignment_weight(pipe, frame, weights=[0.0, 1.0], random_state=0)
    assert choice.estimator[-1].alignment_weight == choice.alignment_weight
    assert choice.estimator.score_samples(frame).shape == (200,)
    assert pipe[-1].keep_density is False
    assert choice.estimator[-1].keep_density is False and choice.estimator[-1].density_ is None


@pytest.mark.parametrize("kwargs, match", [
    (dict(weights=[]), "weights"),
    (dict(weights=[1.0, -1.0]), "weights"),
    (dict(weights=[np.nan]), "weights"),
    (dict(weights=["high"]), "weights"),
    (dict(weights=None), "weights"),
    (dict(weights="1.0"), "not a sequence"),
    (dict(weights=1.0), "not a sequence"),
    (dict(weights=["1", "2"]), "strings, booleans"),
    (dict(weights=[True, False]), "strings, booleans"),
    (dict(weights=[1 + 0j]), "strings, booleans"),
    (dict(weights=[1.0, 1.0]), "repeated"),
    (dict(weights=[np.float32(0.3), 0.3]), "equal to float32 precision"),
    (dict(weights=np.array([[0.0, 1.0]])), "not one-dimensional"),
    (dict(weights={0.0: "off", 1.0: "on"}), "not a sequence"),
    (dict(weights=(w for w in [1.0, -1.0])), "finite and >= 0"),
    (dict(holdout_fraction=0.0), "holdout_fraction"),
    (dict(holdout_fraction=1.5), "holdout_fraction"),
    (dict(holdout_fraction=True), "holdout_fraction"),
    (dict(elbo_budget=-0.1), "elbo_budget"),
    (dict(elbo_budget=np.inf), "elbo_budget"),
])
def test_bad_settings_are_refused_before_any_fit(X, kwargs, match):
    with pytest.raises(ValueError, match=match):
        choose_alignment_weight(DiVAE(**FAST), X, **kwargs)


def test_too_few_rows_and_the_wrong_estimator_are_refused(X):
    with pytest.raises(ValueError, match="at least 10 rows on each side"):
        choose_alignment_weight(DiVAE(**FAST), X[:45], holdout_fraction=0.2)
    from sklearn.ensemble import IsolationForest

    with pytest.raises(TypeError, match="DiVAE"):
        choose_alignment_weight(IsolationForest(), X)
    nested = Pipeline([("outer", make_pipeline(StandardScaler(), DiVAE(**FAST)))])
    with pytest.raises(TypeError, match="final step is a Pipeline"):
        choose_alignment_weight(nested, X)


def test_an_estimator_without_an_aligner_is_refused(X):
    for aligner in (None, "none"):
        with pytest.raises(ValueError, match="aligner"):
            choose_alignment_weight(DiVAE(aligner=aligner, **FAST), X)


def test_a_failed_fit_is_left_out_with_a_warning(X, monkeypatch, no_convergence_warnings):
    fit = DiVAE.fit

    def fit_failing_at_10(self, X, y=None):
        if self.alignment_weight == 10.0:
            raise FloatingPointError("diverged")
        return fit(self, X, y)

    monkeypatch.setattr(DiVAE, "fit", fit_failing_at_10)
    with pytest.warns(RuntimeWarning, match="alignment_weight=10: FloatingPointError"):
        choice = choose_alignment_weight(DiVAE(**FAST), X, weights=[0.0, 10.0], random_state=0)
    assert choice.alignment_weight == 0.0
    assert np.isnan(choice.results["elbo_per_feature"][1])
    assert np.isnan(choice.results["prior_agreement"][1])
    assert choice.results["within_budget"] == [True, False]
    with pytest.raises(ValueError, match="no weight gave a fit"):
        choose_alignment_weight(DiVAE(**FAST), X, weights=[10.0], random_state=0)


def test_weights_may_be_any_iterable_of_numbers(X):
    choice = choose_alignment_weight(DiVAE(**FAST), X, weights=(w for w in [0, np.float32(1)]),
                                     random_state=0)
    assert choice.results["alignment_weight"] == [0.0, 1.0]


@pytest.mark.filterwarnings("ignore:invalid value encountered:RuntimeWarning")
def test_an_undefined_agreement_is_nan_and_the_best_elbo_decides(no_convergence_warnings):
    """Constant data: every log-prior is constant, Spearman is undefined (NaN, not -1), and
    the choice falls back to the best held-out ELBO with a warning."""
    X_const = np.ones((100, 3))
    with pytest.warns(RuntimeWarning, match="agreement with rho is undefined"):
        choice = choose_alignment_weight(DiVAE(**FAST), X_const, weights=[0.0, 1.0], random_state=0)
    assert np.isnan(choice.results["prior_agreement"]).all()
    elbo = choice.results["elbo_per_feature"]
    assert choice.alignment_weight == [0.0, 1.0][int(np.argmax(elbo))]


def test_labels_passed_as_in_scikit_learn_are_ignored(X):
    y = np.r_[np.zeros(len(X) - 5), np.ones(5)]
    with_y = choose_alignment_weight(DiVAE(**FAST), X, y, weights=[0.0, 1.0], random_state=0)
    without = choose_alignment_weight(DiVAE(**FAST), X, weights=[0.0, 1.0], random_state=0)
    assert with_y.results == without.results


def test_a_weight_grid_passed_where_y_goes_is_refused_not_ignored(X):
    with pytest.raises(ValueError, match="weights=\\[...\\]"):
        choose_alignment_weight(DiVAE(**FAST), X, [0.0, 1.0], random_state=0)


def test_a_warning_says_why_alignment_was_turned_off_with_n01_in_2d(X, monkeypatch):
    import warnings

    scores = DiVAE._diagnostic_scores

    def aligned_fits_lose_elbo(self, X_seen):  # as every aligned fit did in weight_choice_2d
        log_prior, elbo, rho = scores(self, X_seen)
        return log_prior, elbo - self.alignment_weight * self.n_features_in_, rho

    monkeypatch.setattr(DiVAE, "_diagnostic_scores", aligned_fits_lose_elbo)
    est = DiVAE(**{**FAST, "prior": "normal"})
    with pytest.warns(UserWarning, match="turned alignment off"):
        choice = choose_alignment_weight(est, X, weights=[0.0, 1.0], random_state=0)
    assert choice.alignment_weight == 0.0 and choice.results["within_budget"] == [True, False]
    for other in (est.set_params(prior="gmm"), DiVAE(**{**FAST, "n_components": 3, "prior": "normal"})):
        with warnings.catch_warnings():  # another regime: the same choice, no such warning
            warnings.filterwarnings("error", message="choose_alignment_weight turned")
            assert choose_alignment_weight(other, X, weights=[0.0, 1.0],
                                           random_state=0).alignment_weight == 0.0


def test_tied_agreements_go_to_the_better_elbo_whatever_the_order():
    from skdivae._weight_choice import _pick

    weights = [0.0, 1.0, 3.0]
    elbo, agreement = [1.00, 1.02, 1.01], [0.2, 0.5, 0.5]  # 1 and 3 tie on agreement
    assert weights[_pick(elbo, agreement, 0.05)] == 1.0
    assert weights[::-1][_pick(elbo[::-1], agreement[::-1], 0.05)] == 1.0
    assert _pick([1.0, np.nan], [np.nan, np.nan], 0.05) == 0  # no agreement: the best ELBO
    assert _pick([np.nan, np.nan], [0.1, 0.2], 0.05) is None

"""fit warns when the encoder ignores its input (posterior collapse)."""

import warnings

import numpy as np
import pytest
from sklearn.datasets import load_breast_cancer
from sklearn.metrics import roc_auc_score

from skdivae import DiVAE, PosteriorCollapseWarning
from skdivae._collapse import ACTIVE_VARIANCE, COLLAPSE_BATCH_SIZE, active_dimensions

MESSAGE = "encoder ignores its input"


def two_clusters(n=300, seed=0):
    """Two tight clusters 8 apart in two dimensions: DiVAE() collapses on them (the user
    guide, section 3)."""
    rng = np.random.default_rng(seed)
    centre = np.array([4.0, 0.0])
    half = rng.normal(size=(n, 2)) * 0.5
    return np.vstack([half[: n // 2] - centre, half[n // 2:] + centre])


def test_a_collapsed_fit_warns_and_names_what_to_try():
    X = two_clusters()
    with pytest.warns(PosteriorCollapseWarning, match=MESSAGE) as record:
        est = DiVAE(random_state=0, batch_size=128).fit(X)  # set: no refit
    assert active_dimensions(est, X) == 0
    assert est.transform(X).var(axis=0).max() <= ACTIVE_VARIANCE
    message = str(next(w.message for w in record if MESSAGE in str(w.message)))
    for remedy in ("batch_size=8", "partial_fit", "decoder_std", "clusters", "rows you know"):
        assert remedy in message
    assert record[0].filename == __file__  # points at the caller's fit


def test_the_remedy_the_warning_names_uses_the_latent_space_and_does_not_warn():
    X = two_clusters()
    with warnings.catch_warnings():
        warnings.simplefilter("error", UserWarning)
        est = DiVAE(random_state=0, batch_size=8).fit(X)
    assert active_dimensions(est, X) > 0


def test_the_automatic_batch_refits_a_collapsed_fit_with_small_batches():
    X = two_clusters()
    rng = np.random.default_rng(1)
    X_test = np.vstack([two_clusters(200, seed=1), rng.normal(size=(20, 2)) * 0.5])
    y_test = np.r_[np.zeros(200), np.ones(20)]  # anomalies between the clusters
    with warnings.catch_warnings():
        warnings.simplefilter("error", UserWarning)
        est = DiVAE(random_state=0).fit(X)
    assert est.batch_size_ == COLLAPSE_BATCH_SIZE and active_dimensions(est, X) > 0
    np.testing.assert_array_equal(  # the refit is the fit a user asking for 8 gets
        est.score_samples(X_test), DiVAE(random_state=0, batch_size=8).fit(X).score_samples(X_test))
    collapsed = DiVAE(random_state=0, batch_size=128).fit(X)  # a batch size set is kept
    assert collapsed.batch_size_ == 128
    assert roc_auc_score(y_test, -est.score_samples(X_test)) > 0.9
    assert roc_auc_score(y_test, -collapsed.score_samples(X_test)) < 0.5
    assert est.get_params()["batch_size"] == "auto"


def test_an_ordinary_fit_does_not_warn():
    X = load_breast_cancer().data
    with warnings.catch_warnings():
        warnings.simplefilter("error", UserWarning)
        est = DiVAE(random_state=0, max_iter="auto").fit(X)
    assert active_dimensions(est, X) > 0


def test_the_check_reads_rows_from_the_whole_of_sorted_data(monkeypatch):
    # a subsample of the first rows of sorted data would see one cluster only
    import skdivae._collapse as collapse

    monkeypatch.setattr(collapse, "CHECK_ROWS", 10)
    X = np.r_[np.zeros((50, 1)), np.ones((50, 1))]

    class Network:
        def posterior_mean(self, rows):
            return rows

    assert collapse.module_active_dimensions(Network(), X) == 1

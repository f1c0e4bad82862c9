"""fit warns when the encoder ignores its input (posterior collapse)."""

import warnings

import numpy as np
import pytest
from sklearn.datasets import load_breast_cancer

from skdivae import DiVAE, PosteriorCollapseWarning
from skdivae._collapse import ACTIVE_VARIANCE, active_dimensions

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
        est = DiVAE(random_state=0).fit(X)
    assert active_dimensions(est, X) == 0
    assert est.transform(X).var(axis=0).max() <= ACTIVE_VARIANCE
    message = str(next(w.message for w in record if MESSAGE in str(w.message)))
    for remedy in ("batch_size", "learning_rate_init", "decoder_std", "clusters"):
        assert remedy in message
    assert record[0].filename == __file__  # points at the caller's fit


def test_the_remedy_the_warning_names_uses_the_latent_space_and_does_not_warn():
    X = two_clusters()
    with warnings.catch_warnings():
        warnings.simplefilter("error", UserWarning)
        est = DiVAE(random_state=0, batch_size=8).fit(X)
    assert active_dimensions(est, X) > 0


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

    class Encoder:
        def _apply(self, method, rows):
            assert method == "posterior_mean"
            return rows

    assert collapse.active_dimensions(Encoder(), X) == 1

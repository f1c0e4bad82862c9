"""Property: any finite array of any shape and scale either fits and scores finitely, or
raises a ValueError; never another exception, never a NaN score."""

import warnings

import numpy as np
import pytest

hypothesis = pytest.importorskip("hypothesis", reason="hypothesis is not installed (test extra)")
from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402
from hypothesis.extra.numpy import arrays  # noqa: E402

from skdivae import DiVAE, KNNLogDensity  # noqa: E402


@st.composite
def finite_tables(draw):
    n_rows = draw(st.integers(1, 40))
    n_cols = draw(st.integers(1, 6))
    unit = draw(st.sampled_from([1e-300, 1e-40, 1e-13, 1e-3, 1.0, 1e3, 1e13, 1e40, 1e300]))
    base = draw(
        arrays(np.float64, (n_rows, n_cols),
               elements=st.floats(-1e3, 1e3, allow_nan=False, allow_infinity=False))
    )
    return base * unit


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(X=finite_tables())
def test_divae_fits_and_scores_finitely_or_raises_value_error(X):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            est = DiVAE(n_components=2, hidden_layer_sizes=(4,), max_iter=2, random_state=0).fit(X)
        except ValueError:
            return
        scores = est.score_samples(X)
    assert scores.shape == (X.shape[0],)
    assert np.isfinite(scores).all()
    assert set(np.unique(est.predict(X))) <= {-1, 1}


@settings(max_examples=40, deadline=None)
@given(X=finite_tables())
def test_knn_density_fits_and_scores_finitely_or_raises_value_error(X):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            kd = KNNLogDensity(3).fit(X)
        except ValueError:
            return
        scores = kd.score_samples(X)
    assert np.isfinite(scores).all()

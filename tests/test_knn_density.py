import pickle
import warnings

import numpy as np
import pytest
from scipy.stats import spearmanr
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from skdivae import KNNLogDensity
from skdivae._density_math import (
    knn_log_density,
    log_unit_ball_volume,
    pak_log_density,
    twonn_dimension,
)
from skdivae.datasets._known_densities import gaussian_mixture, standard_normal

N = 20_000
CASES = [
    ("normal", standard_normal, 2),
    ("normal", standard_normal, 3),
    ("mixture", gaussian_mixture, 2),
    ("mixture", gaussian_mixture, 3),
]
SETTINGS = [("knn", 50), ("pak", 200)]


@pytest.fixture(scope="module")
def fitted():
    """Fit every (case, method) once; tests below read the results."""
    out = {}
    for name, make, d in CASES:
        X, truth = make(N, d, np.random.default_rng(d))
        for method, k in SETTINGS:
            est = KNNLogDensity(k, method=method).fit(X)
            out[name, d, method] = (est, truth)
    return out


@pytest.mark.parametrize("method", ["knn", "pak"])
@pytest.mark.parametrize("name,d", [(c[0], c[2]) for c in CASES])
def test_accuracy_against_known_density(fitted, name, d, method):
    est, truth = fitted[name, d, method]
    resid = est.log_density_ - truth
    assert spearmanr(est.log_density_, truth)[0] >= 0.95
    assert np.median(np.abs(resid)) <= 0.15
    z = resid / est.log_density_err_
    assert 0.5 <= z.std() <= 2.0, "error bars are not honest"
    assert np.isfinite(est.log_density_).all()


@pytest.mark.parametrize("d", [2, 3])
def test_pak_at_least_as_accurate_as_knn_at_same_neighbourhood(d):
    # A multi-scale density, where a fixed k smears the narrow components.
    X, truth = gaussian_mixture(N, d, np.random.default_rng(10 + d), scales=(0.1, 0.3, 1.0))
    rmse, bias = {}, {}
    for method in ["knn", "pak"]:
        est = KNNLogDensity(200, method=method).fit(X)
        resid = est.log_density_ - truth
        rmse[method], bias[method] = np.sqrt(np.mean(resid**2)), abs(resid.mean())
    assert rmse["pak"] <= rmse["knn"]
    assert bias["pak"] <= bias["knn"]


def test_knn_formula_by_hand():
    # Points on a line at unit spacing: r_k is known exactly.
    dist = np.array([[1.0, 2.0, 3.0]])
    log_density, err = knn_log_density(dist, 2, n_ref=9, d=1)
    # V_1 = 2 (the interval [-r, r]); log rho = log 2 - log 9 - log 2 - log 2
    np.testing.assert_allclose(log_density, [np.log(2) - np.log(9) - np.log(2) - np.log(2)])
    np.testing.assert_allclose(err, [1 / np.sqrt(2)])
    np.testing.assert_allclose(log_unit_ball_volume(2), np.log(np.pi))
    np.testing.assert_allclose(log_unit_ball_volume(3), np.log(4 / 3 * np.pi))


def test_pak_recovers_constant_density_and_error_formula():
    # Exact shells of a uniform 2-D density (rho=1, n_ref=1): r_l = sqrt(l / pi).
    k = 20
    dist = np.sqrt(np.arange(1, k + 1) / np.pi)[None, :]
    log_density, err = pak_log_density(dist, np.array([k]), n_ref=1, d=2)
    np.testing.assert_allclose(log_density, [0.0], atol=1e-6)
    np.testing.assert_allclose(err, [np.sqrt((4 * k + 2) / ((k - 1) * k))])


def test_leave_one_out_training_values():
    X = np.random.default_rng(0).normal(size=(300, 2))
    est = KNNLogDensity(10, method="knn").fit(X)
    # transform() on training rows counts each row as its own neighbour (distance 0),
    # so it sees one neighbour fewer than the leave-one-out value at the same k.
    dist, _ = est.nn_.kneighbors(X, n_neighbors=11)
    manual = knn_log_density(dist[:, 1:], 10, 299, 2)[0]
    np.testing.assert_allclose(est.log_density_, manual)
    assert not np.allclose(est.transform(X)[:, 0], est.log_density_)


def test_twonn_recovers_dimension():
    rng = np.random.default_rng(0)
    X = np.zeros((5000, 10))
    X[:, :3] = rng.uniform(size=(5000, 3))  # a 3-D cube embedded in 10-D
    est = KNNLogDensity(10, intrinsic_dim="twonn").fit(X)
    assert est.intrinsic_dim_ == pytest.approx(3, abs=0.3)
    assert np.isnan(twonn_dimension(np.ones(10), np.ones(10)))  # all tied: undefined


@pytest.mark.parametrize("n_components,expected", [(2, 2), (0.5, None), (None, 5)])
def test_pca_forms(n_components, expected):
    rng = np.random.default_rng(0)
    X = rng.normal(size=(500, 5)) * np.array([5, 3, 1, 0.1, 0.1])
    est = KNNLogDensity(10, n_components=n_components).fit(X)
    if expected is not None:
        assert est.n_components_ == expected
    else:
        assert est.n_components_ == est.pca_.n_components_ < 5
    assert est.intrinsic_dim_ == est.n_components_
    assert (est.pca_ is None) == (n_components is None)


def test_too_many_components_is_clamped_with_warning():
    X = np.random.default_rng(0).normal(size=(50, 3))
    with pytest.warns(UserWarning, match="n_components=10 exceeds"):
        est = KNNLogDensity(5, n_components=10).fit(X)
    assert est.n_components_ == 3


@pytest.mark.parametrize("method", ["knn", "pak"])
def test_duplicates_give_finite_values(method):
    rng = np.random.default_rng(0)
    X = np.repeat(rng.normal(size=(30, 2)), 40, axis=0)  # every row 40 times
    est = KNNLogDensity(20, method=method).fit(X)
    assert np.isfinite(est.log_density_).all()
    assert np.isfinite(est.log_density_err_).all()
    assert np.isfinite(est.transform(X)).all()
    X_all_same = np.ones((10, 2))
    assert np.isfinite(KNNLogDensity(5, method=method).fit(X_all_same).log_density_).all()


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_non_finite_input_is_a_clear_error(bad):
    X = np.random.default_rng(0).normal(size=(20, 2))
    X[3, 1] = bad
    with pytest.raises(ValueError, match="NaN|infinity"):
        KNNLogDensity(5).fit(X)
    est = KNNLogDensity(5).fit(np.random.default_rng(0).normal(size=(20, 2)))
    with pytest.raises(ValueError, match="NaN|infinity"):
        est.transform(X)


def test_neighbours_clamped_with_warning():
    X = np.random.default_rng(0).normal(size=(8, 2))
    with pytest.warns(UserWarning, match="using n_neighbors=7"):
        est = KNNLogDensity(30).fit(X)
    assert est.n_neighbors_ == 7


def test_too_few_samples_and_wrong_features():
    with pytest.raises(ValueError, match="minimum of 3"):
        KNNLogDensity(1).fit(np.zeros((2, 2)))
    est = KNNLogDensity(3).fit(np.random.default_rng(0).normal(size=(20, 2)))
    with pytest.raises(ValueError, match="features"):
        est.transform(np.zeros((4, 3)))
    with pytest.raises(ValueError, match="n_neighbors >= 2"):
        KNNLogDensity(1, method="pak").fit(np.random.default_rng(0).normal(size=(20, 2)))


def test_transform_output_and_feature_names():
    pd = pytest.importorskip("pandas")
    X = pd.DataFrame(np.random.default_rng(0).normal(size=(100, 3)), columns=["a", "b", "c"])
    est = KNNLogDensity(10).set_output(transform="pandas").fit(X)
    out = est.transform(X)
    assert list(out.columns) == ["log_density", "log_density_err"]
    np.testing.assert_allclose(out["log_density"], est.score_samples(X))
    np.testing.assert_array_equal(est.feature_names_in_, ["a", "b", "c"])


def test_input_not_modified_pipeline_and_pickle():
    X = np.random.default_rng(0).normal(size=(200, 4))
    X_copy = X.copy()
    pipe = make_pipeline(StandardScaler(), KNNLogDensity(15, n_components=2)).fit(X)
    np.testing.assert_array_equal(X, X_copy)
    restored = pickle.loads(pickle.dumps(pipe))
    np.testing.assert_array_equal(restored.transform(X), pipe.transform(X))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        KNNLogDensity(15).fit(X)


@pytest.mark.parametrize("method", ["knn", "pak"])
def test_max_samples_indexes_a_subsample_and_estimates_every_row(method):
    X = np.random.default_rng(1).normal(size=(3000, 2))
    k = 10 if method == "knn" else 40
    est = KNNLogDensity(k, method=method, max_samples=600, random_state=0).fit(X)
    idx = est.sample_indices_
    assert idx.shape == (600,) and np.all(np.diff(idx) > 0)
    assert est.nn_.n_samples_fit_ == 600 and est.log_density_.shape == (3000,)
    assert np.isfinite(est.log_density_).all() and np.isfinite(est.log_density_err_).all()
    # Indexed rows: leave-one-out among the other 599, exactly as a fit on the subsample.
    alone = KNNLogDensity(k, method=method).fit(X[idx])
    np.testing.assert_allclose(est.log_density_[idx], alone.log_density_)
    # Other rows: a query against the 600 indexed rows, as transform() computes it.
    others = np.setdiff1d(np.arange(3000), idx)
    np.testing.assert_allclose(est.log_density_[others], alone.transform(X[others])[:, 0])
    np.testing.assert_allclose(est.log_density_err_[others], alone.transform(X[others])[:, 1])
    # Still an estimate of the true log-density.
    truth = -np.log(2 * np.pi) - 0.5 * (X**2).sum(axis=1)
    assert spearmanr(est.log_density_, truth)[0] > 0.9


def test_max_samples_share_seed_and_no_op():
    X = np.random.default_rng(2).normal(size=(1000, 3))
    a = KNNLogDensity(10, max_samples=0.25, random_state=3).fit(X)
    b = KNNLogDensity(10, max_samples=250, random_state=3).fit(X)
    assert a.sample_indices_.shape == (250,)
    np.testing.assert_array_equal(a.sample_indices_, b.sample_indices_)
    np.testing.assert_array_equal(a.log_density_, b.log_density_)
    c = KNNLogDensity(10, max_samples=250, random_state=4).fit(X)
    assert not np.array_equal(a.sample_indices_, c.sample_indices_)
    # At least as many as the rows (or a share of 1): every row is indexed, as with None.
    full = KNNLogDensity(10).fit(X)
    for cap in (1000, 5000, 1.0):
        est = KNNLogDensity(10, max_samples=cap, random_state=0).fit(X)
        assert est.sample_indices_ is None
        np.testing.assert_array_equal(est.log_density_, full.log_density_)


def test_max_samples_clamps_neighbours_to_the_index():
    X = np.random.default_rng(0).normal(size=(100, 2))
    with pytest.warns(UserWarning, match="using n_neighbors=9"):
        est = KNNLogDensity(30, max_samples=10, random_state=0).fit(X)
    assert est.n_neighbors_ == 9 and np.isfinite(est.log_density_).all()


@pytest.mark.parametrize("bad", [0, 2, -1, 0.0, 1.5, "all"])
def test_max_samples_out_of_range_is_a_clear_error(bad):
    X = np.random.default_rng(0).normal(size=(50, 2))
    with pytest.raises(ValueError, match="max_samples"):
        KNNLogDensity(5, max_samples=bad).fit(X)


def test_scoring_in_chunks_gives_the_same_values(monkeypatch):
    import skdivae._knn_density as module

    rng = np.random.default_rng(0)
    X, Q = rng.normal(size=(300, 5)), rng.normal(size=(257, 5))
    for method in ("knn", "pak"):
        est = KNNLogDensity(10, method=method, n_components=3).fit(X)
        whole = est.transform(Q)
        monkeypatch.setattr(module, "CHUNK_ELEMENTS", 64)  # chunks of 6 rows
        # the same to rounding (the projection's products differ in the last bit by chunk)
        np.testing.assert_allclose(est.transform(Q), whole, rtol=1e-13)
        np.testing.assert_allclose(est.score_samples(Q), whole[:, 0], rtol=1e-13)
        monkeypatch.undo()


def test_scoring_memory_does_not_grow_with_the_number_of_rows():
    import tracemalloc

    rng = np.random.default_rng(0)
    est = KNNLogDensity(30, n_components=8).fit(rng.normal(size=(2000, 8)))
    peaks = {}
    for n in (100_000, 400_000):
        Q = rng.normal(size=(n, 8))
        tracemalloc.start()
        est.score_samples(Q)
        peaks[n] = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
    # 4x the rows: only the output grows (300 000 more float64 results and errors, 4.8 MB);
    # unscored in chunks, the peak grew with the input (4.5x its size).
    assert peaks[400_000] - peaks[100_000] < 4.8e6 + 8e6


@pytest.mark.parametrize("method", ["knn", "pak"])
def test_one_far_off_row_does_not_flatten_every_density(method):
    # The distance floor (for duplicated rows) came from the data's variance, which one
    # row at 1e11 lifts above every neighbour distance: every row then scored alike.
    rng = np.random.default_rng(0)
    X, Q = rng.normal(size=(200, 3)), rng.normal(size=(5, 3))
    clean = KNNLogDensity(10, method=method).fit(X)
    spoiled = KNNLogDensity(10, method=method).fit(np.vstack([X, [[1e11, 0, 0]]]))
    assert len(np.unique(spoiled.log_density_[:200].round(9))) > 150
    np.testing.assert_allclose(spoiled.score_samples(Q), clean.score_samples(Q), atol=0.05)
    dup = KNNLogDensity(10, method=method).fit(np.vstack([X, X[:3]]))
    assert np.isfinite(dup.log_density_).all()  # duplicates still get a finite, high value


def test_score_is_the_total_log_density_and_a_search_can_use_it():
    from sklearn.model_selection import GridSearchCV

    rng = np.random.default_rng(0)
    X, Q = rng.normal(size=(300, 2)), rng.normal(size=(20, 2))
    est = KNNLogDensity(10).fit(X)
    assert est.score(Q) == pytest.approx(est.score_samples(Q).sum())
    search = GridSearchCV(KNNLogDensity(), {"n_neighbors": [5, 30]}, cv=3).fit(X)
    assert np.isfinite(search.cv_results_["mean_test_score"]).all()


def test_whiten_without_n_components_warns_that_it_does_nothing():
    X = np.random.default_rng(0).normal(size=(60, 3)) * [1.0, 5.0, 0.2]
    with pytest.warns(UserWarning, match="whiten=True\\) has no effect without n_components"):
        whitened = KNNLogDensity(5, whiten=True).fit(X)
    np.testing.assert_array_equal(whitened.log_density_, KNNLogDensity(5).fit(X).log_density_)


def test_rows_with_many_exact_copies_warn_and_twonn_leaves_copies_out():
    import warnings

    from skdivae import DiVAE, DuplicateRowsWarning

    rng = np.random.default_rng(0)
    binary = (rng.random((600, 4)) < 0.5).astype(float)  # 16 distinct rows, about 37 copies each
    with pytest.warns(DuplicateRowsWarning, match="exact copies"):
        KNNLogDensity(30).fit(binary)
    with warnings.catch_warnings():
        warnings.simplefilter("error", DuplicateRowsWarning)
        KNNLogDensity(30).fit(rng.normal(size=(300, 3)))  # no copies, no warning
        DiVAE(max_iter=2, n_components=2, hidden_layer_sizes=(8,), random_state=0).fit(binary)
    X = rng.normal(size=(2000, 3))
    X[:100] = X[1000:1100]  # 5 % of the rows copied
    dim = KNNLogDensity(30, intrinsic_dim="twonn").fit(X).intrinsic_dim_
    assert 2.6 < dim < 3.4


def test_a_query_too_large_for_squared_distances_is_refused_as_fit_refuses_it():
    est = KNNLogDensity(10).fit(np.random.default_rng(0).normal(size=(100, 3)))
    for method in (est.transform, est.score_samples):
        with pytest.raises(ValueError, match="overflow float64"):
            method([[1e200, 0.0, 0.0]])

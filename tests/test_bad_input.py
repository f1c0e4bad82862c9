"""Bad and edge-case input: each case asserts the exact behaviour (the error type and a
phrase of its message, or the correct output). Covers DiVAE, KNNLogDensity, the priors,
the scorer and the dataset loaders."""

import gzip
import warnings
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
import scipy.sparse as sp
import torch
from sklearn.base import BaseEstimator
from sklearn.exceptions import NotFittedError
from sklearn.mixture import GaussianMixture

from skdivae import DiVAE, GaussianMixturePrior, KNNLogDensity, VampPrior
from skdivae.datasets import RotatedGaussianMixture, load_adbench, load_mnist
from skdivae.model_selection import density_agreement_score

FAST = dict(n_components=2, max_iter=4, hidden_layer_sizes=(8,), random_state=0)


@pytest.fixture(autouse=True)
def _quiet(no_convergence_warnings):
    yield


@pytest.fixture(scope="module")
def X():
    return np.random.default_rng(0).normal(size=(120, 4))


@pytest.fixture(scope="module")
def fitted(X):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return DiVAE(**FAST).fit(X)


def finite_fit_and_scores(X, **params):
    est = DiVAE(**{**FAST, **params}).fit(X)
    scores = est.score_samples(X)
    assert np.isfinite(scores).all()
    return est, scores


# ------------------------------------------------------------------ the three cases
def test_sample_negative_count_is_a_value_error(fitted):
    with pytest.raises(ValueError, match="Invalid value for 'n_samples': -1"):
        fitted.sample(-1)


def test_sample_zero_is_refused_like_gaussian_mixture(fitted, X):
    # GaussianMixture.sample(0) raises "Invalid value for 'n_samples'"; DiVAE matches it.
    with pytest.raises(ValueError, match="Invalid value for 'n_samples'"):
        GaussianMixture(2, random_state=0).fit(X).sample(0)
    with pytest.raises(ValueError, match="Invalid value for 'n_samples': 0"):
        fitted.sample(0)


def test_sample_non_integer_count_is_refused(fitted):
    with pytest.raises(ValueError, match="Invalid value for 'n_samples': 2.5"):
        fitted.sample(2.5)
    with pytest.raises(ValueError, match="Invalid value for 'n_samples': True"):
        fitted.sample(True)


def test_values_too_large_to_standardise_say_so(X):
    with pytest.raises(ValueError, match="cannot standardise values beyond 1e\\+18"):
        DiVAE(**FAST).fit(X * 1e300)


def test_large_but_trainable_values_fit_and_score_like_unit_data(X):
    _, base = finite_fit_and_scores(X)
    _, big = finite_fit_and_scores(X * 1e15)
    # The same model up to the units: scores shift by the log-Jacobian, ranks agree.
    assert np.corrcoef(base, big)[0, 1] > 0.999


# ------------------------------------------------------------------ odd columns and rows
def test_duplicated_columns_fit_and_score_finitely(X):
    finite_fit_and_scores(np.hstack([X, X[:, :2]]))


def test_constant_column_fits_and_scores_finitely(X):
    est, _ = finite_fit_and_scores(np.hstack([X, np.full((len(X), 1), 7.0)]))
    assert est.module_.scale[-1].item() == 1.0


def test_near_constant_column_keeps_its_spread(X):
    col = 5.0 + 1e-9 * np.random.default_rng(1).normal(size=(len(X), 1))
    est, _ = finite_fit_and_scores(np.hstack([X, col]))
    assert est.module_.scale[-1].item() == pytest.approx(col.std(), rel=1e-6)


def test_column_with_one_huge_outlier_fits_and_scores_finitely(X):
    Xo = X.copy()
    Xo[3, 1] = 1e12
    est, scores = finite_fit_and_scores(Xo)
    assert np.argmin(scores) == 3


def test_mostly_identical_rows_fit_and_score_finitely():
    rng = np.random.default_rng(2)
    X = np.vstack([np.ones((150, 3)), rng.normal(size=(10, 3))])
    finite_fit_and_scores(X)
    kd = KNNLogDensity(5).fit(X)
    assert np.isfinite(kd.log_density_).all() and np.isfinite(kd.score_samples(X)).all()


def test_small_scale_data_keep_their_shape(X):
    _, base = finite_fit_and_scores(X)
    _, tiny = finite_fit_and_scores(X * 1e-13)
    assert np.corrcoef(base, tiny)[0, 1] > 0.999


def test_small_spread_around_a_large_mean_is_kept(X):
    # float32 cannot hold 1e6 + 1e-3 * x; the standardisation happens in float64 first.
    _, base = finite_fit_and_scores(X)
    _, shifted = finite_fit_and_scores(1e6 + 1e-3 * X)
    assert np.corrcoef(base, shifted)[0, 1] > 0.999


@pytest.mark.parametrize("view", [lambda a: a[::-1], np.flip, lambda a: a[:, ::-1]],
                         ids=["rows reversed", "np.flip", "columns reversed"])
def test_negative_stride_views_give_the_results_of_a_contiguous_copy(X, view):
    V = view(X)
    assert any(s < 0 for s in V.strides)
    est = DiVAE(**FAST).fit(V)
    ref = DiVAE(**FAST).fit(np.ascontiguousarray(V))
    np.testing.assert_array_equal(est.score_samples(V), ref.score_samples(np.ascontiguousarray(V)))
    np.testing.assert_array_equal(est.transform(V), ref.transform(np.ascontiguousarray(V)))
    np.testing.assert_array_equal(est.predict(V), ref.predict(np.ascontiguousarray(V)))


def test_reversed_and_reordered_dataframes_are_accepted(X):
    pd = pytest.importorskip("pandas")
    df = pd.DataFrame(X, columns=[f"f{i}" for i in range(X.shape[1])])
    for frame in (df.iloc[::-1], df[list(df.columns[::-1])]):
        est = DiVAE(**FAST).fit(frame)
        assert np.isfinite(est.score_samples(frame)).all()
        assert est.inverse_transform(est.transform(frame)).shape == frame.shape


def test_float32_input_is_standardised_with_float64_moments():
    from skdivae._training_data import standardization

    values = 100.0 + 0.001 * np.random.default_rng(0).normal(size=(2000, 3))
    as32 = values.astype(np.float32)
    center, scale = standardization(as32, True)
    exact = as32.astype(np.float64)
    np.testing.assert_allclose(center, exact.mean(axis=0), rtol=1e-12)
    np.testing.assert_allclose(scale, exact.std(axis=0), rtol=1e-9)


def test_spread_too_small_for_float32_is_refused(X):
    with pytest.raises(ValueError, match="cannot resolve spreads below 1e-15"):
        DiVAE(**FAST).fit(X * 1e-300)


# ------------------------------------------------------------------ types and containers
def test_pandas_categorical_and_object_columns_are_refused():
    pd = pytest.importorskip("pandas")
    df = pd.DataFrame({"a": np.arange(20.0), "b": pd.Categorical(["x", "y"] * 10)})
    with pytest.raises(ValueError, match="could not convert|Unable to convert|dtype"):
        DiVAE(**FAST).fit(df)
    df = pd.DataFrame({"a": np.arange(20.0), "b": ["x", "y"] * 10})
    with pytest.raises(ValueError, match="could not convert string to float"):
        DiVAE(**FAST).fit(df)


def test_differing_feature_names_are_refused(X):
    pd = pytest.importorskip("pandas")
    est = DiVAE(**FAST).fit(pd.DataFrame(X, columns=list("abcd")))
    with pytest.raises(ValueError, match="feature names should match"):
        est.score_samples(pd.DataFrame(X, columns=list("abce")))


def test_sparse_input_is_refused_with_a_hint(X):
    with pytest.raises(TypeError, match="[Ss]parse"):
        DiVAE(**FAST).fit(sp.csr_matrix(X))
    with pytest.raises(TypeError, match="[Ss]parse"):
        KNNLogDensity(5).fit(sp.csr_matrix(X))


def test_memmap_input_works_and_is_not_modified(X, tmp_path):
    path = tmp_path / "X.dat"
    mm = np.memmap(path, dtype=np.float64, mode="w+", shape=X.shape)
    mm[:] = X
    mm.flush()
    ro = np.memmap(path, dtype=np.float64, mode="r", shape=X.shape)
    finite_fit_and_scores(ro)  # a memmap is streamed block by block (tests/test_out_of_core.py)
    np.testing.assert_array_equal(np.asarray(ro), X)
    # Read into memory first, it takes the in-memory path, as the array itself does.
    _, scores = finite_fit_and_scores(np.array(ro))
    np.testing.assert_array_equal(DiVAE(**FAST).fit(X).score_samples(X), scores)


@pytest.mark.parametrize("dtype", [np.float16, np.int32, np.int64, np.uint8, bool])
def test_float16_int_and_bool_input_are_converted(X, dtype):
    data = (X * 10).astype(dtype) if dtype is not bool else X > 0
    finite_fit_and_scores(data)


def test_complex_input_is_refused(X):
    with pytest.raises(ValueError, match="[Cc]omplex"):
        DiVAE(**FAST).fit(X + 1j)


@pytest.mark.parametrize("bad, phrase", [(np.nan, "NaN"), (np.inf, "infinity")])
def test_nan_and_inf_are_refused_in_fit_and_score(X, fitted, bad, phrase):
    Xb = X.copy()
    Xb[0, 0] = bad
    with pytest.raises(ValueError, match=phrase):
        DiVAE(**FAST).fit(Xb)
    with pytest.raises(ValueError, match=phrase):
        fitted.score_samples(Xb)


def test_wrong_feature_count_and_dimensions(fitted, X):
    with pytest.raises(ValueError, match="4 features"):
        fitted.score_samples(X[:, :3])
    with pytest.raises(ValueError, match="Expected 2D array"):
        fitted.score_samples(X[:, 0])
    with pytest.raises(ValueError, match="Found array with dim 3"):
        DiVAE(**FAST).fit(X[:, :, None])


def test_too_few_rows(X):
    with pytest.raises(ValueError, match="minimum of 3 is required"):
        DiVAE(**FAST).fit(X[:2])


def test_unfitted_estimator_raises_not_fitted(X):
    with pytest.raises(NotFittedError):
        DiVAE().score_samples(X)
    with pytest.raises(NotFittedError):
        DiVAE().get_feature_names_out()


# ------------------------------------------------------------------ inverse_transform
def test_inverse_transform_validates_like_transform(fitted):
    with pytest.raises(ValueError, match="NaN"):
        fitted.inverse_transform(np.array([[np.nan, 0.0]]))
    with pytest.raises(ValueError, match="infinity"):
        fitted.inverse_transform(np.array([[np.inf, 0.0]]))
    with pytest.raises(ValueError, match="0 sample"):
        fitted.inverse_transform(np.empty((0, 2)))
    with pytest.raises(ValueError, match="shape \\(n_samples, 2\\)"):
        fitted.inverse_transform(np.zeros((3, 5)))


# ------------------------------------------------------------------ bernoulli
def test_bernoulli_refuses_values_outside_unit_interval_at_fit_and_score():
    rng = np.random.default_rng(0)
    X = rng.uniform(size=(80, 5))
    est = DiVAE(**FAST, likelihood="bernoulli").fit(X)
    with pytest.raises(ValueError, match="likelihood='bernoulli'"):
        DiVAE(**FAST, likelihood="bernoulli").fit(X * 3)
    X_bad = X[:3].copy()
    X_bad[0, 0] = 10.0
    for method in ("score_samples", "predict", "decision_function", "transform"):
        with pytest.raises(ValueError, match="scores values in \\[0, 1\\] only"):
            getattr(est, method)(X_bad)


def test_bernoulli_takes_values_off_the_unit_interval_by_rounding_only(tmp_path):
    # MinMaxScaler can return 1.0000000000000002; that is not an out-of-range value.
    X = np.random.default_rng(0).uniform(size=(80, 5))
    X[0, 0], X[1, 1] = 1.0000000000000002, -1e-17
    est = DiVAE(**FAST, likelihood="bernoulli").fit(X)
    assert np.isfinite(est.score_samples(X)).all()
    np.save(tmp_path / "X.npy", X)
    DiVAE(**FAST, likelihood="bernoulli").fit(np.load(tmp_path / "X.npy", mmap_mode="r"))
    with pytest.raises(ValueError, match="MinMaxScaler\\(clip=True\\)"):
        est.score_samples(X + 1e-6)


# ------------------------------------------------------------------ the density teacher
class _Teacher(BaseEstimator):
    """A teacher whose score_samples is broken in a chosen way."""

    def __init__(self, mode="nan"):
        self.mode = mode

    def fit(self, X, y=None):
        self.n_features_in_ = X.shape[1]
        return self

    def score_samples(self, X):
        n = X.shape[0]
        if self.mode == "nan":
            return np.full(n, np.nan)
        if self.mode == "raise":
            raise RuntimeError("teacher exploded")
        if self.mode == "column":
            return np.zeros((n, 1))
        return np.zeros(n - 1)  # "short"


def test_teacher_returning_nan_is_refused(X):
    with pytest.raises(ValueError, match="non-finite log-densities"):
        DiVAE(**FAST, density=_Teacher("nan")).fit(X)


def test_teacher_that_raises_propagates_and_leaves_nothing_fitted(X):
    est = DiVAE(**FAST, density=_Teacher("raise"))
    with pytest.raises(RuntimeError, match="teacher exploded"):
        est.fit(X)
    assert not [k for k in vars(est) if k.endswith("_")]


@pytest.mark.parametrize("mode, shape", [("column", r"\(120, 1\)"), ("short", r"\(119,\)")])
def test_teacher_with_wrong_output_shape_is_refused(X, mode, shape):
    with pytest.raises(ValueError, match=f"one log-density per training row, shape \\(120,\\); it returned shape {shape}"):
        DiVAE(**FAST, density=_Teacher(mode)).fit(X)


def test_failed_refit_clears_every_fitted_attribute(X):
    est = DiVAE(**FAST).fit(X)
    est.set_params(density=_Teacher("nan"))
    with pytest.raises(ValueError):
        est.fit(X)
    assert not [k for k in vars(est) if k.endswith("_") or k == "_n_features_out"]
    with pytest.raises(NotFittedError):
        est.get_feature_names_out()


# ------------------------------------------------------------------ parameters
@pytest.mark.parametrize("sizes", [(16.7,), ("a",), [[16, 16]], (0,), (True,)])
def test_bad_hidden_layer_sizes_are_refused(X, sizes):
    with pytest.raises(ValueError, match="hidden_layer_sizes must be a positive int"):
        DiVAE(**{**FAST, "hidden_layer_sizes": sizes}).fit(X)
    with pytest.raises(ValueError, match="'hidden_layer_sizes' parameter of DiVAE must be an array-like"):
        DiVAE(**{**FAST, "hidden_layer_sizes": -3}).fit(X)


def test_hidden_layer_sizes_accepts_numpy_ints(X):
    est = DiVAE(**{**FAST, "hidden_layer_sizes": np.array([8, 4])}).fit(X)
    assert est.module_.encoder.mlp[0].out_features == 8


def test_boolean_n_components_is_refused(X):
    with pytest.raises(ValueError, match="'n_components' parameter of DiVAE must be an int.*Got True"):
        DiVAE(**{**FAST, "n_components": True}).fit(X)


@pytest.mark.parametrize("name", ["n_components", "batch_size"])
def test_narrow_numpy_integers_work_as_python_ints(X, name, tmp_path):
    """An np.uint8 size (scikit-learn accepts any Integral) gives the model a Python int
    gives, after a save/load round trip too: no numpy overflow in size arithmetic."""
    from skdivae import load, save

    value = {"n_components": 2, "batch_size": 32}[name]
    plain = DiVAE(**{**FAST, name: value}).fit(X)
    narrow = DiVAE(**{**FAST, name: np.uint8(value)}).fit(X)
    np.testing.assert_array_equal(narrow.score_samples(X), plain.score_samples(X))
    np.testing.assert_array_equal(narrow.inverse_transform(narrow.transform(X[:5])),
                                  plain.inverse_transform(plain.transform(X[:5])))
    save(narrow, tmp_path / "m.skdivae")
    np.testing.assert_array_equal(load(tmp_path / "m.skdivae").score_samples(X), plain.score_samples(X))


@pytest.mark.parametrize("prior", [GaussianMixturePrior(2.7), GaussianMixturePrior(0), VampPrior(True)])
def test_bad_prior_component_counts_are_refused(X, prior):
    with pytest.raises(ValueError, match="'n_components' parameter of (GaussianMixture|Vamp)Prior"):
        DiVAE(**FAST, prior=prior).fit(X)


def test_cuda_without_cuda_is_a_clear_error(X):
    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    with pytest.raises(ValueError, match="device='cuda' was requested but torch sees no CUDA"):
        DiVAE(**FAST, device="cuda").fit(X)


def test_invalid_parameter_values_are_named(X):
    with pytest.raises(ValueError, match="'contamination' parameter"):
        DiVAE(**FAST, contamination=0.9).fit(X)
    with pytest.raises(ValueError, match="'prior' parameter"):
        DiVAE(**FAST, prior="laplace").fit(X)


# ------------------------------------------------------------------ scorer and data sets
def test_density_agreement_score_refuses_other_estimators_and_single_rows(X, fitted):
    with pytest.raises(TypeError, match="scores a DiVAE"):
        density_agreement_score(GaussianMixture(2).fit(X), X)
    with pytest.raises(ValueError, match="at least 2 held-out rows"):
        density_agreement_score(fitted, X[:1])


def test_density_agreement_score_warns_on_fewer_than_ten_rows():
    est = DiVAE(**FAST, keep_density=True).fit(np.random.default_rng(0).normal(size=(60, 3)))
    with pytest.warns(UserWarning, match="hold out at least 10 rows"):
        density_agreement_score(est, np.random.default_rng(1).normal(size=(2, 3)))


@pytest.mark.parametrize(
    "kwargs, phrase",
    [({"n_components": 0}, "n_components must be a positive int"),
     ({"n_features": 1}, "n_features must be an int of at least 2"),
     ({"noise": -1}, "noise must be a positive finite number"),
     ({"noise": 0.0}, "noise must be a positive finite number")],
)
def test_rotated_mixture_refuses_bad_settings(kwargs, phrase):
    with pytest.raises(ValueError, match=phrase):
        RotatedGaussianMixture(**kwargs)


def test_loaders_name_what_is_missing_or_broken(tmp_path):
    with pytest.raises(FileNotFoundError, match="no download is attempted"):
        load_adbench(tmp_path / "missing.npz")
    np.savez(tmp_path / "no_y.npz", X=np.zeros((3, 2)))
    with pytest.raises(ValueError, match="lacks the array"):
        load_adbench(tmp_path / "no_y.npz")
    np.savez(tmp_path / "object.npz", X=np.array([object()] * 3, dtype=object), y=np.zeros(3))
    with pytest.raises(ValueError, match="[Pp]ickle"):
        load_adbench(tmp_path / "object.npz")
    with pytest.raises(FileNotFoundError, match="no download is attempted"):
        load_mnist(tmp_path, "train")
    with pytest.raises(ValueError, match="subset must be 'train' or 'test'"):
        load_mnist(tmp_path, "validation")
    with gzip.open(tmp_path / "train-images-idx3-ubyte.gz", "wb") as fh:
        fh.write(b"\x00\x00\x09\x99garbage")
    with gzip.open(tmp_path / "train-labels-idx1-ubyte.gz", "wb") as fh:
        fh.write(b"\x00\x00\x08\x01")
    with pytest.raises(ValueError, match="not an idx file"):
        load_mnist(tmp_path, "train")


# ------------------------------------------------------------------ threads
def test_scoring_from_several_threads_is_exact(fitted, X):
    expected = fitted.score_samples(X)
    with ThreadPoolExecutor(4) as pool:
        results = list(pool.map(lambda _: fitted.score_samples(X), range(8)))
    for r in results:
        np.testing.assert_array_equal(r, expected)


def test_concurrent_fits_and_samples_match_serial_ones_and_leave_torch_rng(X):
    state = torch.get_rng_state()

    def run(seed):
        est = DiVAE(**{**FAST, "random_state": seed}, prior=GaussianMixturePrior(2)).fit(X)
        return est.score_samples(X), est.sample(4, random_state=seed)

    serial = [run(s) for s in range(3)]
    with ThreadPoolExecutor(3) as pool:
        threaded = list(pool.map(run, range(3)))
    for (s1, x1), (s2, x2) in zip(serial, threaded):
        np.testing.assert_array_equal(s1, s2)
        np.testing.assert_array_equal(x1, x2)
    assert torch.equal(state, torch.get_rng_state())


def test_knn_density_refuses_magnitudes_whose_distances_overflow(X):
    with pytest.raises(ValueError, match="squared distances between rows overflow or underflow"):
        KNNLogDensity(5).fit(X * 1e300)
    with pytest.raises(ValueError, match="squared distances between rows overflow or underflow"):
        KNNLogDensity(5).fit(X * 1e-300)
    assert np.isfinite(KNNLogDensity(5).fit(X * 1e100).score_samples(X * 1e100)).all()


def test_grid_search_under_joblib_threading_matches_serial(X):
    from joblib import parallel_backend
    from sklearn.model_selection import GridSearchCV, KFold

    def search(n_jobs):
        grid = GridSearchCV(DiVAE(**FAST), {"alignment_weight": [0.0, 1.0, 3.0]},
                            cv=KFold(3, shuffle=True, random_state=0), n_jobs=n_jobs)
        return grid.fit(X).cv_results_["mean_test_score"]

    serial = search(None)
    with parallel_backend("threading"):
        threaded = search(3)
    np.testing.assert_array_equal(serial, threaded)


def test_anomaly_roc_auc_reads_both_label_conventions(X):
    from sklearn.metrics import roc_auc_score
    from sklearn.model_selection import GridSearchCV, KFold

    from skdivae.model_selection import anomaly_labels, anomaly_roc_auc

    rng = np.random.default_rng(3)
    Xa = np.vstack([X, rng.uniform(-8, 8, size=(12, 4))])
    y01 = np.r_[np.zeros(len(X)), np.ones(12)].astype(int)
    ypm = np.where(y01 == 1, -1, 1)
    est = DiVAE(**FAST).fit(Xa)
    expected = roc_auc_score(ypm, est.decision_function(Xa))  # sklearn's convention, right
    assert anomaly_roc_auc(est, Xa, y01) == pytest.approx(expected)
    assert anomaly_roc_auc(est, Xa, ypm) == pytest.approx(expected)
    assert anomaly_roc_auc(est, Xa, y01.astype(bool)) == pytest.approx(expected)
    # the mistake this scorer exists for: "roc_auc" with 0/1 labels ranks inverted
    assert roc_auc_score(y01, est.decision_function(Xa)) == pytest.approx(1 - expected)
    with pytest.raises(ValueError, match="anomaly labels must be 0/1"):
        anomaly_labels([0, 1, 2])
    with pytest.raises(ValueError, match="needs both anomalies and normal rows"):
        anomaly_roc_auc(est, Xa, np.zeros(len(Xa)))

    cv = KFold(3, shuffle=True, random_state=0)
    grid = {"alignment_weight": [0.0, 1.0, 3.0]}
    ours = GridSearchCV(DiVAE(**FAST), grid, scoring=anomaly_roc_auc, cv=cv).fit(Xa, y01)
    sk = GridSearchCV(DiVAE(**FAST), grid, scoring="roc_auc", cv=cv).fit(Xa, ypm)
    np.testing.assert_allclose(ours.cv_results_["mean_test_score"], sk.cv_results_["mean_test_score"])


def test_a_labelled_search_with_unshuffled_folds_says_how_to_split(X):
    # Anomalies last, as in ADBench's files: cv=3 (an unshuffled KFold for a detector) leaves
    # folds without anomalies. The scorer's error, which GridSearchCV turns into a warning,
    # must say what to do; the stratified split the docs recommend scores every fold.
    from sklearn.model_selection import GridSearchCV, StratifiedKFold

    from skdivae.model_selection import anomaly_roc_auc

    rng = np.random.default_rng(3)
    Xa = np.vstack([X, rng.uniform(-8, 8, size=(12, 4))])
    y = np.r_[np.zeros(len(X)), np.ones(12)].astype(int)
    grid = {"alignment_weight": [0.0, 1.0]}
    with pytest.warns(UserWarning, match=r"StratifiedKFold\(n_splits, shuffle=True"), \
            warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="One or more of the test scores are non-finite")
        GridSearchCV(DiVAE(**FAST), grid, scoring=anomaly_roc_auc, cv=3).fit(Xa, y)
    cv = StratifiedKFold(3, shuffle=True, random_state=0)
    good = GridSearchCV(DiVAE(**FAST), grid, scoring=anomaly_roc_auc, cv=cv).fit(Xa, y)
    assert np.isfinite(good.cv_results_["mean_test_score"]).all()


@pytest.mark.parametrize("params, message", [
    ({"anomaly_score": "ELBO"}, "'anomaly_score' parameter"),
    ({"n_threads": "two"}, "'n_threads' parameter"),
    ({"n_threads": 0}, "'n_threads' parameter"),
    ({"n_threads": True}, "'n_threads' parameter.*Got True"),
])
def test_parameters_set_after_fit_are_validated_when_scoring(X, params, message):
    est = DiVAE(**FAST).fit(X).set_params(**params)
    with pytest.raises(ValueError, match=message):
        est.score_samples(X)


@pytest.mark.parametrize("params, match", [
    (dict(density__n_neighbors=10), "density=None is not an object.*KNNLogDensity"),
    (dict(prior__n_components=3), "prior='auto' is a name.*GaussianMixturePrior"),
    (dict(aligner__n_layers=2), "aligner='direct' is a name.*FlowAligner"),
])
def test_a_nested_parameter_on_a_name_or_none_says_which_object_to_pass(params, match):
    est = DiVAE()
    with pytest.raises(ValueError, match=match):
        est.set_params(**params)
    assert est.get_params() == DiVAE().get_params()  # nothing half-set


def test_a_nested_parameter_on_an_object_is_set(X):
    from sklearn.model_selection import GridSearchCV
    from sklearn.pipeline import make_pipeline

    est = DiVAE().set_params(density=KNNLogDensity(), density__n_neighbors=5)
    assert est.density.n_neighbors == 5
    pipe = make_pipeline(DiVAE(density=KNNLogDensity(), max_iter=2, random_state=0))
    search = GridSearchCV(pipe, {"divae__density__n_neighbors": [5, 10]}, cv=2).fit(X)
    assert search.best_params_["divae__density__n_neighbors"] in (5, 10)


def test_anomaly_roc_auc_warns_when_no_score_is_finite(X):
    from skdivae.model_selection import anomaly_roc_auc

    class AllNaN(BaseEstimator):
        def score_samples(self, X):
            return np.full(len(X), np.nan)

    y = np.r_[np.zeros(len(X) - 10), np.ones(10)]
    with pytest.warns(RuntimeWarning, match="every score is NaN or infinite alike"):
        assert anomaly_roc_auc(AllNaN(), X, y) == 0.5

    class InfAndNaN(BaseEstimator):  # normal rows +inf, anomalies NaN: a perfect ranking
        def score_samples(self, X):
            return np.where(np.arange(len(X)) < len(X) - 10, np.inf, np.nan)

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert anomaly_roc_auc(InfAndNaN(), X, y) == 1.0


def test_divergence_with_a_tiny_fixed_decoder_std_names_it(X):
    from skdivae._training import divergence_message

    with pytest.raises(FloatingPointError, match="larger decoder_std"):
        DiVAE(**FAST, decoder_std=1e-30).fit(X)
    est = DiVAE(**FAST).fit(X)  # learned noise: the message does not mention it
    assert "decoder_std" not in divergence_message(est.module_, 3)
    assert "at epoch 3" in divergence_message(est.module_, 3)


def test_column_shifted_far_from_zero_keeps_its_scale(X):
    # 1e14 + 35 x: a spread of 3.5e-13 of the mean, resolved in float64, is not constant.
    Xs = X * np.array([35.0, 1, 1, 1])
    _, base = finite_fit_and_scores(Xs)
    shifted = Xs.copy()
    shifted[:, 0] += 1e14
    est, moved = finite_fit_and_scores(shifted)
    assert est.module_.scale[0].item() == pytest.approx(Xs[:, 0].std(), rel=1e-3)
    assert np.corrcoef(base, moved)[0, 1] > 0.999


def test_a_computed_constant_column_stays_constant_in_memory_and_streamed(tmp_path):
    # (a * 0.7) / a is 0.7 up to rounding: standardising that noise would flag every new
    # row whose 0.7 arrives rounded otherwise (the moments' own rounding grows with the
    # rows, more so when streamed, and the test for a constant column allows for it)
    rng = np.random.default_rng(1)
    a = rng.uniform(1, 10, 3000)
    X = np.column_stack([rng.normal(size=(3000, 3)), (a * 0.7) / a, (a + 0.1) - a])
    np.save(tmp_path / "X.npy", X)
    for data in (X, np.load(tmp_path / "X.npy", mmap_mode="r")):
        est = DiVAE(**FAST).fit(data)
        np.testing.assert_array_equal(est.module_.scale[3:].numpy(), [1.0, 1.0])


def test_density_dim_is_the_teachers_own_space(X):
    from sklearn.decomposition import PCA
    from sklearn.neighbors import KernelDensity
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    cases = [(None, 2), (KNNLogDensity(5), 4), (make_pipeline(StandardScaler(), KNNLogDensity(5)), 4),
             (KernelDensity(), 4), (make_pipeline(PCA(3), GaussianMixture(2, random_state=0)), 3)]
    for density, dim in cases:
        assert DiVAE(**FAST, density=density).fit(X).density_dim_ == dim

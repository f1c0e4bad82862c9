"""DiVAE on a real dask.distributed cluster: grid search under joblib's dask backend, and
blockwise scoring of dask arrays and dataframes. Needs the `dask` extra (installed by make test)."""

import warnings

import numpy as np
import pytest
from sklearn.exceptions import ConvergenceWarning
from sklearn.model_selection import GridSearchCV, KFold

pytest.importorskip("dask", reason="dask is not installed: pip install 'skdivae[dask]'")
distributed = pytest.importorskip(
    "distributed", reason="dask.distributed is not installed: pip install 'skdivae[dask]'"
)
pd = pytest.importorskip("pandas", reason="pandas is needed for dask.dataframe")

import dask.array as da  # noqa: E402
import dask.dataframe as dd  # noqa: E402
from joblib import parallel_backend  # noqa: E402

from skdivae import DiVAE, KNNLogDensity, score_blockwise  # noqa: E402

from .conftest import FAST  # noqa: E402

pytestmark = pytest.mark.usefixtures("no_convergence_warnings")


@pytest.fixture(scope="module")
def client():
    cluster = distributed.LocalCluster(
        n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None
    )
    with distributed.Client(cluster) as c:
        yield c
    cluster.close()


@pytest.fixture(scope="module")
def fitted(X):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        return DiVAE(**FAST).fit(X)


def test_grid_search_on_the_dask_backend_matches_the_default_backend(X, client):
    def search():
        grid = GridSearchCV(
            DiVAE(**FAST), {"alignment_weight": [0.0, 1.0, 3.0]}, cv=KFold(3, shuffle=True, random_state=0)
        )
        return grid.fit(X)

    serial = search()
    with distributed.get_task_stream(client) as stream, parallel_backend("dask"):
        on_dask = search()
    assert on_dask.best_params_ == serial.best_params_
    np.testing.assert_allclose(
        on_dask.cv_results_["mean_test_score"], serial.cv_results_["mean_test_score"], rtol=1e-6
    )
    # the fits really ran on the cluster's two workers
    assert len(stream.data) >= 9
    assert len({task["worker"] for task in stream.data}) == 2


@pytest.mark.parametrize("method", ["score_samples", "decision_function", "predict", "transform"])
def test_blockwise_dask_array_equals_in_memory(fitted, X, client, method):
    lazy = score_blockwise(fitted, da.from_array(X, chunks=(50, 2)), method)
    out = client.compute(lazy).result()
    # Equal up to float64 rounding: matrix products over blocks of 50 rows may differ from
    # those over all rows in the last bit.
    np.testing.assert_allclose(out, getattr(fitted, method)(X), rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("method", ["score_samples", "predict", "transform"])
def test_blockwise_dask_dataframe_equals_in_memory(X, client, method):
    frame = pd.DataFrame(X, columns=["a", "b", "c", "d"])
    est = DiVAE(**FAST).fit(frame)
    lazy = score_blockwise(est, dd.from_pandas(frame, npartitions=4), method)
    out = client.compute(lazy).result()
    expected = getattr(est, method)(frame)
    np.testing.assert_allclose(np.asarray(out), np.asarray(expected), rtol=1e-12, atol=1e-12)
    assert list(out.index) == list(frame.index)


def test_blockwise_knn_density_and_in_memory_passthrough(X):
    kd = KNNLogDensity(10).fit(X)
    np.testing.assert_array_equal(
        score_blockwise(kd, da.from_array(X, chunks=60)).compute(scheduler="sync"), kd.score_samples(X)
    )
    np.testing.assert_array_equal(score_blockwise(kd, X), kd.score_samples(X))


def test_blockwise_refuses_unknown_methods_and_shapes(fitted, X):
    with pytest.raises(ValueError, match="method must be one of"):
        score_blockwise(fitted, X, "fit")
    with pytest.raises(ValueError, match="2-D dask array"):
        score_blockwise(fitted, da.from_array(X[:, 0], chunks=50))


@pytest.mark.parametrize("method", ["score_samples", "predict", "transform"])
def test_blockwise_handles_empty_partitions_and_unknown_chunks(fitted, X, method):
    frame = pd.DataFrame(X, columns=["a", "b", "c", "d"])
    est = DiVAE(**FAST).fit(frame)
    ddf = dd.from_pandas(frame, npartitions=4)
    kept = ddf[ddf.a > 1.0]  # some partitions end up empty
    out = score_blockwise(est, kept, method).compute(scheduler="sync")
    expected = getattr(est, method)(frame[frame.a > 1.0])
    np.testing.assert_allclose(np.asarray(out), np.asarray(expected), rtol=1e-12, atol=1e-12)
    arr = da.from_array(X, chunks=(50, 4))
    sel = arr[arr[:, 0] > 1.0]  # unknown chunk sizes
    out = score_blockwise(fitted, sel, method).compute(scheduler="sync")
    np.testing.assert_allclose(out, getattr(fitted, method)(X[X[:, 0] > 1.0]), rtol=1e-12, atol=1e-12)


def test_blockwise_feature_residuals_through_a_pipeline(X):
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    from skdivae import feature_residuals

    frame = pd.DataFrame(X, columns=["a", "b", "c", "d"])
    model = make_pipeline(StandardScaler(), DiVAE(**FAST)).fit(frame)
    expected = model[-1].feature_residuals(model[:-1].transform(frame))
    np.testing.assert_array_equal(feature_residuals(model, frame), expected)
    on_array = make_pipeline(StandardScaler(), DiVAE(**FAST)).fit(X)  # fitted without names
    lazy = score_blockwise(on_array, da.from_array(X, chunks=(50, 2)), "feature_residuals")
    np.testing.assert_allclose(lazy.compute(scheduler="sync"), feature_residuals(on_array, X),
                               rtol=1e-12, atol=1e-12)
    out = score_blockwise(model, dd.from_pandas(frame, npartitions=3), "feature_residuals")
    out = out.compute(scheduler="sync")
    assert list(out.columns) == ["a", "b", "c", "d"]
    np.testing.assert_allclose(out.to_numpy(), expected, rtol=1e-12, atol=1e-12)
    with pytest.raises(TypeError, match="Pipeline ending in one"):
        feature_residuals(make_pipeline(StandardScaler()).fit(X), X)


def test_residual_names_through_passthrough_steps():
    from sklearn.pipeline import Pipeline

    from skdivae import residual_names

    frame = pd.DataFrame(np.random.default_rng(0).normal(size=(120, 3)), columns=["a", "b", "c"])
    model = Pipeline([("keep", "passthrough"), ("det", DiVAE(**FAST))]).fit(frame)
    assert list(residual_names(model)) == ["a", "b", "c"]


def test_streaming_fit_from_a_dataframe_whose_partitions_live_on_the_workers(X, client):
    frame = pd.DataFrame(X, columns=[f"f{i}" for i in range(X.shape[1])])
    local = dd.from_pandas(frame, npartitions=3)
    expected = DiVAE(**FAST).fit(local)  # with the cluster's client as the scheduler too
    on_workers = local.persist()
    distributed.wait(on_workers)
    assert set(client.who_has(on_workers)) and len(client.has_what()) == 2
    model = DiVAE(**FAST).fit(on_workers)
    assert list(model.feature_names_in_) == list(frame.columns)
    np.testing.assert_array_equal(model.score_samples(frame), expected.score_samples(frame))


def test_dask_ml_incremental_trains_by_partial_fit_block_by_block(X):
    wrappers = pytest.importorskip(
        "dask_ml.wrappers", reason="dask-ml is not installed: pip install 'skdivae[dask]'"
    )
    blocks = np.array_split(X, 3)
    inc = wrappers.Incremental(DiVAE(**FAST), shuffle_blocks=False)
    inc.fit(da.from_array(X, chunks=(len(blocks[0]), -1)))
    by_hand = DiVAE(**FAST)
    for block in blocks:
        by_hand.partial_fit(block)
    assert inc.estimator_.n_iter_ == 3
    np.testing.assert_array_equal(inc.estimator_.score_samples(X), by_hand.score_samples(X))


def test_a_streamed_fit_names_missing_values_and_mixed_column_names_as_in_memory():
    frame = pd.DataFrame({"a": pd.array([1, 2, None] * 30, dtype="Int64"),
                          "b": np.arange(90.0)})
    with pytest.raises(ValueError, match="Input X contains NaN"):
        DiVAE(**FAST).fit(dd.from_pandas(frame, npartitions=2))
    text = pd.DataFrame({"a": pd.array(["x", None] * 45, dtype=object), "b": np.arange(90.0)})
    with pytest.raises(ValueError, match="must be numeric"):  # not taken for a missing value
        DiVAE(**FAST).fit(dd.from_pandas(text, npartitions=2))
    values = np.random.default_rng(0).normal(size=(90, 2))
    for columns in (["a", 1], pd.Index(["a", np.str_("b")], dtype=object)):
        mixed = pd.DataFrame(values, columns=columns)
        for data in (mixed, dd.from_pandas(mixed, npartitions=2)):
            with pytest.raises(TypeError, match="all input features have string names"):
                DiVAE(**FAST).fit(data)

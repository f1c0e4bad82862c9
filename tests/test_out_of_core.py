"""Training on data that do not fit in memory: partial_fit, and fit streaming a memmap or a
dask collection block by block."""

import copy
import pickle

import numpy as np
import pytest
from scipy.stats import spearmanr
from sklearn.metrics import roc_auc_score

import skdivae
from skdivae import DiVAE

from .conftest import FAST

pytestmark = pytest.mark.usefixtures("no_convergence_warnings")


@pytest.fixture(scope="module")
def data():
    """3 000 Gaussian rows in 6 correlated columns, the last 60 shifted (anomalies)."""
    rng = np.random.default_rng(0)
    X = rng.normal(size=(3000, 6)) @ rng.normal(size=(6, 6))
    X[-60:] += 4.0
    return X, np.r_[np.zeros(2940), np.ones(60)]


def test_one_partial_fit_call_is_a_one_epoch_fit(data):
    X, _ = data
    fitted = DiVAE(**{**FAST, "max_iter": 1}).fit(X)
    streamed = DiVAE(**{**FAST, "max_iter": 1}).partial_fit(X)
    np.testing.assert_array_equal(streamed.score_samples(X), fitted.score_samples(X))
    assert streamed.offset_ == fitted.offset_ and streamed.n_iter_ == 1


def test_partial_fit_over_blocks_is_close_to_a_one_epoch_fit(data):
    X, y = data
    order = np.random.default_rng(1).permutation(len(X))
    fitted = DiVAE(**{**FAST, "max_iter": 1}).fit(X[order])
    blocks = DiVAE(**{**FAST, "max_iter": 1})
    for rows in np.array_split(order, 5):
        blocks.partial_fit(X[rows])
    assert blocks.n_iter_ == 5 and len(blocks.loss_curve_) == 5
    a, b = fitted.score_samples(X), blocks.score_samples(X)
    assert spearmanr(a, b)[0] > 0.9
    assert abs(roc_auc_score(y, -a) - roc_auc_score(y, -b)) < 0.05


def test_partial_fit_refuses_other_features_and_keeps_the_model(data):
    X, _ = data
    model = DiVAE(**FAST).partial_fit(X[:500])
    before = model.score_samples(X)
    for bad in (X[:100, :4], np.where(np.arange(6) == 2, np.nan, X[:100])):
        with pytest.raises(ValueError, match="features|NaN"):
            model.partial_fit(bad)
    np.testing.assert_array_equal(model.score_samples(X), before)  # a refused block changes nothing
    assert model.partial_fit(X[500:600]).n_iter_ == 2
    with pytest.raises(ValueError, match="n_components changed"):
        model.set_params(n_components=3).partial_fit(X[600:700])
    model.set_params(n_components=FAST["n_components"], anomaly_score="log_prior")
    model.partial_fit(X[600:700])  # what does not define the network may change
    fitted = DiVAE(**FAST).fit(X)
    with pytest.raises(ValueError, match="network's parameters"):
        fitted.set_params(hidden_layer_sizes=(8,)).partial_fit(X[:100])
    pd = pytest.importorskip("pandas")
    frame = pd.DataFrame(X[:500], columns=list("abcdef"))
    model = DiVAE(**FAST).partial_fit(frame)
    with pytest.raises(ValueError, match="feature names"):
        model.partial_fit(frame.rename(columns={"a": "z"}))


def test_partial_fit_state_survives_pickle_and_deepcopy(data):
    X, _ = data
    for aligner in ("direct", "flow"):
        model = DiVAE(**FAST, aligner=aligner)
        for block in np.array_split(X[:1200], 3):
            model.partial_fit(block)
        copies = [pickle.loads(pickle.dumps(model)), copy.deepcopy(model)]
        for m in [model, *copies]:
            m.partial_fit(X[1200:1600])
        for c in copies:
            np.testing.assert_array_equal(c.score_samples(X), model.score_samples(X))


def test_fit_starts_over_and_partial_fit_continues_a_fit_or_a_loaded_model(data, tmp_path):
    X, _ = data
    model = DiVAE(**FAST).partial_fit(X[:500]).fit(X)
    np.testing.assert_array_equal(model.score_samples(X), DiVAE(**FAST).fit(X).score_samples(X))
    before = model.score_samples(X)
    model.partial_fit(X[:500])
    assert model.n_iter_ == FAST["max_iter"] + 1
    assert not np.array_equal(model.score_samples(X), before)
    skdivae.save(model, tmp_path / "m.skdivae")
    loaded = skdivae.load(tmp_path / "m.skdivae")
    np.testing.assert_array_equal(loaded.score_samples(X), model.score_samples(X))
    loaded.partial_fit(X[500:1000])
    assert loaded.n_iter_ == model.n_iter_ + 1 and np.isfinite(loaded.score_samples(X)).all()


def test_fit_streams_a_memmap_block_by_block(data, tmp_path, monkeypatch):
    import skdivae._streaming as streaming

    X, y = data
    np.save(tmp_path / "X.npy", X)
    mapped = np.load(tmp_path / "X.npy", mmap_mode="r")
    monkeypatch.setattr(streaming, "BLOCK_ROWS", 700)  # 5 blocks, 2 buffers
    model = DiVAE(**FAST).fit(mapped)
    assert model.n_features_in_ == 6 and model.n_iter_ == FAST["max_iter"]
    assert roc_auc_score(y, -model.score_samples(X)) > 0.9
    # A memmap that is a view (not a whole file) is read through the mapping: same model.
    view = np.load(tmp_path / "X.npy", mmap_mode="r")[:, :]
    np.testing.assert_array_equal(DiVAE(**FAST).fit(view).score_samples(X), model.score_samples(X))


@pytest.mark.parametrize("max_samples", [None, 500])
def test_a_streamed_fit_gives_the_teachers_own_rows_their_leave_one_out_values(
        data, tmp_path, monkeypatch, max_samples):
    # A query would count each row the teacher indexes as its own neighbour (with one
    # neighbour: the same value for every row, and nothing trimmed).
    import skdivae._streaming as streaming
    from skdivae import KNNLogDensity

    X, _ = data
    np.save(tmp_path / "X.npy", X)
    monkeypatch.setattr(streaming, "BLOCK_ROWS", 700)
    monkeypatch.setattr(streaming, "DENSITY_MAX_SAMPLES", 2000)  # a sample of the rows
    seen = []
    block_arrays = streaming.block_arrays

    def spy(X_std, target, err, cut, device, rows=None):
        seen.append((X_std.copy(), np.array(target), cut.threshold))
        return block_arrays(X_std, target, err, cut, device, rows)

    monkeypatch.setattr(streaming, "block_arrays", spy)
    teacher = KNNLogDensity(1, n_components=2, max_samples=max_samples, random_state=0)
    model = DiVAE(**{**FAST, "max_iter": 1}, density=teacher, keep_density=True)
    model.fit(np.load(tmp_path / "X.npy", mmap_mode="r"))
    X_std = np.concatenate([s[0] for s in seen])
    target = np.concatenate([s[1] for s in seen])
    queried = model.density_.score_samples(X_std)
    assert len(np.unique(target)) > len(target) // 2  # not one value for every row
    # exactly the rows the teacher indexes differ from a query: their leave-one-out values
    assert (~np.isclose(target, queried, rtol=0, atol=1e-9)).sum() == model.density_.nn_.n_samples_fit_
    assert np.mean(target <= seen[0][2]) == pytest.approx(0.05, abs=0.02)


def test_a_memmap_joblib_makes_for_a_worker_is_fitted_in_memory(data):
    # joblib hands large arrays to worker processes as read-only memmaps: n_jobs must not
    # turn a fit from memory into a streamed one (early stopping would be refused).
    from joblib import Parallel, delayed

    X, _ = data
    params = {**FAST, "early_stopping": True}

    def fit_scores(X_worker):
        return type(X_worker).__name__, DiVAE(**params).fit(X_worker).score_samples(X[:50])

    (kind, parallel), = Parallel(n_jobs=2, max_nbytes="1K")(delayed(fit_scores)(X) for _ in [0])
    assert kind == "memmap"
    np.testing.assert_array_equal(parallel, DiVAE(**params).fit(X).score_samples(X[:50]))


def test_streaming_from_dask_matches_a_memmap_with_the_same_blocks(data, tmp_path, monkeypatch):
    da = pytest.importorskip("dask.array", reason="dask is not installed: pip install 'skdivae[dask]'")
    import skdivae._streaming as streaming

    X, _ = data
    monkeypatch.setattr(streaming, "BLOCK_ROWS", 1000)
    np.save(tmp_path / "X.npy", X)
    mapped = DiVAE(**FAST).fit(np.load(tmp_path / "X.npy", mmap_mode="r"))
    lazy = DiVAE(**FAST).fit(da.from_array(X, chunks=(1000, 3)))  # columns are gathered
    np.testing.assert_array_equal(lazy.score_samples(X), mapped.score_samples(X))


def test_streaming_errors_name_the_problem(data, tmp_path):
    X, _ = data
    dask = pytest.importorskip("dask", reason="dask is not installed: pip install 'skdivae[dask]'")
    with pytest.raises(TypeError, match="streams a numpy.memmap"):
        DiVAE(**FAST).fit(dask.delayed(X))
    bad = X.copy()
    bad[2500, 1] = np.nan
    np.save(tmp_path / "bad.npy", bad)
    with pytest.raises(ValueError, match="NaN"):
        DiVAE(**FAST).fit(np.load(tmp_path / "bad.npy", mmap_mode="r"))
    with pytest.raises(ValueError, match="early_stopping"):
        da = pytest.importorskip("dask.array")
        DiVAE(**FAST, early_stopping=True).fit(da.from_array(X, chunks=(1000, 3)))


def test_early_stopping_reads_a_memmap_into_memory(data, tmp_path):
    # early stopping holds rows out in memory: a memmap is fitted as the array it holds
    # (scikit-learn's common checks hand every estimator a read-only memmap)
    X, _ = data
    np.save(tmp_path / "X.npy", X)
    params = {**FAST, "early_stopping": True}
    mapped = DiVAE(**params).fit(np.load(tmp_path / "X.npy", mmap_mode="r"))
    np.testing.assert_array_equal(mapped.score_samples(X[:50]),
                                  DiVAE(**params).fit(X).score_samples(X[:50]))


def test_partial_fit_threshold_reads_a_sample_of_every_row_seen(data):
    X, _ = data
    model = DiVAE(**FAST)
    for block in (X[:1000], X[1000:2000], X[2000:2001]):  # a ragged last block of one row
        model.partial_fit(block)
    flagged = np.mean(model.predict(X) == -1)
    assert 0.05 < flagged < 0.2  # contamination=0.1 of the rows, not of the last block
    assert np.all(model.score_scale_ > 1e-6)


def test_a_copy_on_write_memmap_is_read_with_its_changes_and_left_as_it_is(data, tmp_path):
    X, _ = data
    np.save(tmp_path / "X.npy", np.asfortranarray(X))
    for order in ("C", "F"):
        np.save(tmp_path / "X.npy", np.asarray(X, order=order))
        mapped = np.load(tmp_path / "X.npy", mmap_mode="c")
        mapped[:] = mapped * 100 + 50
        changed = np.array(mapped)
        model = DiVAE(**FAST).fit(mapped)
        np.testing.assert_array_equal(np.asarray(mapped), changed)
        np.testing.assert_allclose(model.module_.center.numpy(), changed.mean(axis=0), rtol=1e-6)


def test_bernoulli_decoders_train_on_their_own_targets_whatever_standardize():
    X = (np.random.default_rng(0).random((400, 6)) > 0.5).astype(float)
    a = DiVAE(**FAST, likelihood="bernoulli").fit(X)
    b = DiVAE(**FAST, likelihood="bernoulli", standardize=False).fit(X)
    np.testing.assert_array_equal(a.score_samples(X), b.score_samples(X))
    assert a.score(X) > -X.shape[1]  # a sound model: above log(1/2) per binary feature x 1.44


def test_rows_tied_at_the_trimming_threshold_share_the_cut_in_later_blocks():
    # Discrete data: the lowest teacher value is shared by a quarter of the rows. The
    # in-memory fit leaves out floor((n - 1) * f) + 1 of them; later blocks (partial_fit,
    # streamed fits) used to leave out every row at or below the threshold: all of them.
    from skdivae._training_data import block_arrays, trim_threshold, trimmed_count

    target = np.repeat([1.0, 2.0, 3.0, 4.0], 150)
    cut = trim_threshold(target, 0.05)
    assert cut.threshold == 1.0 and cut.tie_share == trimmed_count(600, 0.05) / 150
    query = target - np.log(600 / 599)  # a kNN teacher's value of new copies of the rows
    keep = block_arrays(np.zeros((600, 1)), query, np.ones(600), cut, "cpu",
                        rows=np.arange(600, 1200))[3].numpy()
    assert abs((keep == 0).sum() - 30) <= 2 and (keep[150:] == 1).all()
    # Without ties nothing changes: every row at or below the threshold leaves the ELBO.
    cut = trim_threshold(np.arange(100.0), 0.05)
    assert cut.tie_share == 1.0 and cut.tolerance == 0.0
    keep = block_arrays(np.zeros((6, 1)), np.array([0.0, 3.0, 4.0, 4.5, 6.0, 99.0]),
                        np.ones(6), cut, "cpu")[3].numpy()
    assert keep.tolist() == [0, 0, 0, 1, 1, 1]


@pytest.mark.parametrize("path", ["partial_fit", "memmap"])
def test_later_blocks_of_discrete_data_trim_about_the_share_asked(path, tmp_path, monkeypatch):
    # Four patterns, so a quarter of the rows tie at the lowest teacher value: later
    # blocks used to leave every one of them out of the ELBO (reconstruction term 0).
    import skdivae._incremental as incremental
    import skdivae._streaming as streaming

    rng = np.random.default_rng(0)
    patterns = np.array([[0, 0, 1], [0, 1, 0], [1, 0, 0], [1, 1, 1]], float)
    X = patterns[rng.integers(0, 4, 800)]
    left_out = []
    module = incremental if path == "partial_fit" else streaming
    block_arrays = module.block_arrays

    def spy(*args, **kwargs):
        arrays = block_arrays(*args, **kwargs)
        left_out.append((int((arrays[3] == 0).sum()), len(arrays[3])))
        return arrays

    monkeypatch.setattr(module, "block_arrays", spy)
    est = DiVAE(n_components=2, max_iter=2, random_state=0)
    if path == "partial_fit":
        for block in np.split(X, 4):
            est.partial_fit(block)
    else:
        monkeypatch.setattr(streaming, "BLOCK_ROWS", 100)
        np.save(tmp_path / "X.npy", X)
        est.fit(np.load(tmp_path / "X.npy", mmap_mode="r"))
    out, rows = map(sum, zip(*left_out))
    assert 0.03 <= out / rows <= 0.07  # trim_fraction 0.05
    assert all(h["recon"] != 0.0 for h in est.history_)

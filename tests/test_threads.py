"""DiVAE's torch thread use: one thread for training by default, chunks scored side by side
with one torch thread each, and torch's process-wide setting restored after every call, even
under threads."""

import threading
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
import torch
from sklearn.base import BaseEstimator

from skdivae import DiVAE
from skdivae._torch_utils import torch_threads

FAST = dict(n_components=2, hidden_layer_sizes=(8,), max_iter=2, random_state=0)


class ThreadRecordingTeacher(BaseEstimator):
    """A constant density teacher that records torch's thread count when it is fitted."""

    def fit(self, X, y=None):
        self.threads_seen_ = torch.get_num_threads()
        return self

    def score_samples(self, X):
        return np.zeros(len(X))


@pytest.fixture
def two_threads():
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    yield
    torch.set_num_threads(before)


@pytest.fixture(autouse=True)
def _quiet(no_convergence_warnings):
    yield


@pytest.mark.parametrize("n_threads, during_fit", [("auto", 1), (1, 1), (2, 2), (None, 2)])
def test_fit_uses_the_requested_threads_and_restores_them(n_threads, during_fit, two_threads,
                                                          small_tabular):
    teacher = ThreadRecordingTeacher()
    est = DiVAE(**FAST, density=teacher, keep_density=True, n_threads=n_threads).fit(small_tabular)
    assert est.density_.threads_seen_ == during_fit
    assert torch.get_num_threads() == 2


@pytest.mark.parametrize("n_threads, during_scoring", [("auto", 1), (1, 1), (None, 2)])
def test_scoring_threads(n_threads, during_scoring, two_threads, small_tabular):
    # "auto" scores chunks side by side, one torch thread each; None keeps torch's setting.
    est = DiVAE(**FAST, n_threads=n_threads).fit(small_tabular)
    seen = []
    elbo = est.module_.elbo
    est.module_.elbo = lambda x, **kw: (seen.append(torch.get_num_threads()), elbo(x, **kw))[1]
    est.score_samples(small_tabular)
    assert set(seen) == {during_scoring}
    assert torch.get_num_threads() == 2


def test_concurrent_fits_leave_the_setting_unchanged(two_threads, small_tabular):
    def fit(seed):
        return DiVAE(**{**FAST, "random_state": seed}).fit(small_tabular).score_samples(small_tabular)

    with ThreadPoolExecutor(4) as pool:
        threaded = list(pool.map(fit, range(4)))
    assert torch.get_num_threads() == 2
    seen = []
    worker = threading.Thread(target=lambda: seen.append(torch.get_num_threads()))
    worker.start()
    worker.join()
    assert seen == [2]  # new threads start from the restored setting too
    for seed, scores in enumerate(threaded):
        np.testing.assert_array_equal(scores, fit(seed))


def test_nested_blocks_restore_the_outer_setting(two_threads):
    with torch_threads(1):
        assert torch.get_num_threads() == 1
        with torch_threads(2):
            assert torch.get_num_threads() == 2
        assert torch.get_num_threads() == 1
    assert torch.get_num_threads() == 2


@pytest.mark.parametrize("bad", [True, 0, -1, 1.5, "all"])
def test_bad_thread_counts_are_refused(bad, small_tabular):
    est = DiVAE(**FAST, n_threads=bad)
    with pytest.raises(ValueError, match="n_threads"):
        est.fit(small_tabular)
    assert not hasattr(est, "module_")


def test_auto_scoring_is_bit_identical_whatever_the_number_of_workers(monkeypatch):
    import skdivae._outputs as outputs

    rng = np.random.default_rng(0)
    X = rng.normal(size=(9000, 40))  # several chunks, a layer wide enough for BLAS blocking
    est = DiVAE(n_components=4, hidden_layer_sizes=(128,), max_iter=2, random_state=0).fit(X)
    results = {}
    for workers in (1, 2, 5):
        monkeypatch.setattr(outputs, "available_cpus", lambda: workers)
        results[workers] = [est.set_params(anomaly_score=s).score_samples(X)
                            for s in ("elbo", "min(elbo,log_prior)")] + [est.transform(X)]
    for workers in (2, 5):
        for a, b in zip(results[1], results[workers]):
            np.testing.assert_array_equal(a, b)


def test_auto_scoring_respects_a_lower_torch_setting(monkeypatch, small_tabular):
    import skdivae._outputs as outputs

    seen = []
    real = outputs.parallel_no_grad
    monkeypatch.setattr(outputs, "parallel_no_grad",
                        lambda make_fn, X, rows, workers: (seen.append(workers),
                                                           real(make_fn, X, rows, workers))[1])
    est = DiVAE(**FAST).fit(small_tabular)
    with torch_threads(1):  # e.g. OMP_NUM_THREADS=1, or inside a joblib worker
        est.score_samples(small_tabular)
    assert seen and seen[-1] == 1


def test_concurrent_fits_under_a_float64_default_dtype_restore_it_once_all_are_done():
    import warnings

    X = np.random.default_rng(0).normal(size=(120, 3))
    settings = dict(max_iter=3, hidden_layer_sizes=(8,), n_components=2, random_state=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        reference = DiVAE(**settings).fit(X).score_samples(X)
    before, scores, errors = torch.get_default_dtype(), {}, []

    def fit(i):
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                scores[i] = DiVAE(**settings).fit(X).score_samples(X)
        except Exception as exc:  # reported below
            errors.append(repr(exc))

    torch.set_default_dtype(torch.float64)
    try:
        threads = [threading.Thread(target=fit, args=(i,)) for i in range(3)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert torch.get_default_dtype() == torch.float64
    finally:
        torch.set_default_dtype(before)
    assert errors == []
    for values in scores.values():
        np.testing.assert_array_equal(values, reference)

"""Alignment at probe points off the data (``DiVAE(alignment_probes=...)``)."""

import warnings

import numpy as np
import pytest
import torch
from sklearn.metrics import roc_auc_score

from skdivae import DiVAE, DirectAligner
from skdivae._build import build_module
from skdivae._probes import probe_rows
from skdivae.priors import StandardNormalPrior

FAST = dict(max_iter=3, hidden_layer_sizes=(8,), batch_size=32, random_state=0)


def clusters(n, seed=0):
    rng = np.random.default_rng(seed)
    centres = np.random.default_rng(99).normal(scale=4, size=(5, 10))
    return centres[rng.integers(5, size=n)] + rng.normal(size=(n, 10))


def test_probe_rows_are_noisy_copies_then_mixed_columns():
    X = np.arange(40.0).reshape(10, 4)
    rows = probe_rows(X, 7, np.random.default_rng(0))
    assert rows.shape == (7, 4)
    mixed = rows[3:]  # each column a value that column holds
    for j in range(4):
        assert np.isin(mixed[:, j], X[:, j]).all()
    assert not np.isin(rows[:3], X).all()  # the noisy half is off the rows


def test_probes_are_encoded_and_aligned_never_decoded():
    torch.manual_seed(0)
    module = build_module(
        n_features=3, n_latent=2, hidden_layer_sizes=(8,), activation="relu",
        prior=StandardNormalPrior(), aligner=DirectAligner(), likelihood="gaussian",
        center=np.zeros(3), scale=np.ones(3), density_dim=2, X_train=torch.randn(20, 3),
        generator=torch.Generator(),
    ).double()
    x, target, weight = torch.randn(8, 3).double(), torch.randn(8).double(), torch.ones(8).double()
    probes = (100 * torch.randn(4, 3).double(), -50 * torch.ones(4).double(),
              torch.ones(4).double())
    plain = module.loss(x, target, weight, generator=torch.Generator().manual_seed(1))
    with_probes = module.loss(x, target, weight, generator=torch.Generator().manual_seed(1),
                              probes=probes)
    assert torch.equal(plain["recon"], with_probes["recon"])  # the same draws, rows decoded
    assert torch.equal(plain["kl"], with_probes["kl"])
    assert not torch.equal(plain["align"], with_probes["align"])
    module.zero_grad()
    with_probes["align"].backward()
    assert all(p.grad is None or not p.grad.abs().sum() for p in module.decoder.parameters())


def test_zero_probes_and_no_aligner_leave_the_fit_as_it_was(X):
    a = DiVAE(**FAST).fit(X).score_samples(X[:10])
    np.testing.assert_array_equal(a, DiVAE(**FAST, alignment_probes=0.0).fit(X).score_samples(X[:10]))
    b = DiVAE(**FAST, aligner=None).fit(X).score_samples(X[:10])
    np.testing.assert_array_equal(
        b, DiVAE(**FAST, aligner=None, alignment_probes=1.0).fit(X).score_samples(X[:10]))
    # weight 0 trains the plain VAE, probes or not
    c = DiVAE(**FAST, alignment_weight=0).fit(X).score_samples(X[:10])
    np.testing.assert_array_equal(
        c, DiVAE(**FAST, alignment_weight=0, alignment_probes=1.0).fit(X).score_samples(X[:10]))
    # the flow aligner reads the input through its flow: no probes (the paper's formulation)
    flow = DiVAE(max_iter=2, hidden_layer_sizes=(8,), batch_size=32, random_state=0, aligner="flow")
    plain = flow.fit(X).score_samples(X[:5])
    with pytest.warns(UserWarning, match="alignment_probes=1.0 is ignored"):
        flow.set_params(alignment_probes=1.0).fit(X)
    np.testing.assert_array_equal(plain, flow.score_samples(X[:5]))


def test_probes_where_a_bounded_teacher_has_no_density_are_left_out(X):
    from sklearn.neighbors import KernelDensity

    est = DiVAE(**FAST, alignment_probes=0.5,
                density=KernelDensity(kernel="tophat", bandwidth=2.0)).fit(X)
    assert np.isfinite(est.score_samples(X[:5])).all()


def test_a_teacher_that_transforms_in_place_does_not_rewrite_the_probes(X):
    from sklearn.neighbors import KernelDensity
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import MinMaxScaler

    scores = [DiVAE(**FAST, alignment_probes=0.5,
                    density=make_pipeline(MinMaxScaler(copy=c), KernelDensity())).fit(X)
              .score_samples(X[:10]) for c in (True, False)]
    np.testing.assert_array_equal(scores[0], scores[1])


def test_a_model_pickled_before_the_option_loads_and_continues(X):
    import pickle

    est = DiVAE(**FAST)
    est.partial_fit(X[:60])
    del est.alignment_probes  # as pickled before the option existed
    del est._block_trainer_.settings["alignment_probes"]
    old = pickle.loads(pickle.dumps(est))
    assert old.alignment_probes == 0.0
    old.partial_fit(X[60:120])  # the missing setting counts as its default then
    assert np.isfinite(old.score_samples(X[:5])).all()


def test_probes_change_a_fit_and_stay_repeatable(X):
    with_probes = DiVAE(**FAST, alignment_probes=0.5)
    a = with_probes.fit(X).score_samples(X[:10])
    assert not np.array_equal(a, DiVAE(**FAST).fit(X).score_samples(X[:10]))
    np.testing.assert_array_equal(a, with_probes.fit(X).score_samples(X[:10]))


def test_probes_stop_the_log_prior_ranking_far_rows_as_the_most_normal():
    # Trained on clean clusters, the aligned log-prior ranked uniform rows around them
    # as normal as the clusters' (ROC AUC 0.62 in the scratch check that led here).
    X = clusters(1500)
    rng = np.random.default_rng(1)
    X_test = np.vstack([clusters(300, seed=2), rng.uniform(-8, 8, size=(60, 10))])
    y = np.r_[np.zeros(300), np.ones(60)]
    aucs = []
    for probes in (0.0, 0.5):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            est = DiVAE(random_state=0, max_iter=40, alignment_probes=probes,
                        anomaly_score="log_prior").fit(X)
        aucs.append(roc_auc_score(y, -est.score_samples(X_test)))
    assert aucs[1] > 0.95 and aucs[1] > aucs[0] + 0.1


def test_partial_fit_and_the_streamed_fit_align_at_probes(X, tmp_path):
    est = DiVAE(**FAST, alignment_probes=0.5)
    for block in np.array_split(X, 3):
        est.partial_fit(block)
    assert est._block_trainer_.probes[0].shape[0] == int(np.ceil(0.5 * len(np.array_split(X, 3)[0])))
    with pytest.raises(ValueError, match="alignment_probes"):
        est.set_params(alignment_probes=1.0).partial_fit(X[:20])
    mm = np.memmap(tmp_path / "x.dat", np.float64, "w+", shape=X.shape)
    mm[:] = X
    streamed = DiVAE(**FAST, alignment_probes=0.5).fit(mm)
    assert np.isfinite(streamed.score_samples(X[:5])).all()

import io
import pickle
import warnings
from contextlib import redirect_stdout

import joblib
import numpy as np
import pytest
import torch
from sklearn.base import clone
from sklearn.exceptions import ConvergenceWarning
from sklearn.mixture import GaussianMixture
from sklearn.model_selection import GridSearchCV, KFold
from sklearn.metrics import roc_auc_score
from sklearn.neighbors import KernelDensity
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from skdivae import DiVAE, GaussianMixturePrior, KNNLogDensity, VampPrior
from skdivae._nn.vae import VAEModule

FAST = dict(n_components=2, max_iter=8, hidden_layer_sizes=(16,), random_state=0)


@pytest.fixture(autouse=True)
def _quiet():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        yield


def blobs_with_outliers(seed=0, n_in=400, n_out=40, d=5):
    rng = np.random.default_rng(seed)
    centers = rng.normal(scale=3, size=(3, d))
    inliers = centers[rng.integers(3, size=n_in)] + 0.5 * rng.normal(size=(n_in, d))
    outliers = rng.uniform(-12, 12, size=(n_out, d))
    X = np.vstack([inliers, outliers])
    y = np.r_[np.ones(n_in), -np.ones(n_out)]  # sklearn's outlier convention
    return X, y


@pytest.fixture(scope="module")
def data():
    return blobs_with_outliers()


@pytest.fixture(scope="module")
def fitted(data):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        return DiVAE(**FAST).fit(data[0])


def test_fit_returns_self_and_fitted_attributes(data):
    est = DiVAE(**FAST)
    assert est.fit(data[0]) is est
    assert isinstance(est.module_, VAEModule)
    assert next(est.module_.parameters()).dtype == torch.float64
    assert not est.module_.training
    assert est.n_iter_ == len(est.history_) == len(est.loss_curve_) == 8
    assert {"loss", "recon", "kl", "align", "beta", "alignment_weight", "time"} <= set(est.history_[0])
    assert est.density_ is None and est.density_dim_ == 2  # the teacher is not kept by default
    assert est.batch_size_ == 128 and str(est.device_) == "cpu"


def test_default_latent_size_and_teacher_dimension_capped_at_n_features(data):
    # The default latent (8, chosen in docs/results/defaults.md) exceeds these 5 features:
    # the teacher's PCA is capped at the data's dimension, the latent is not.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        est = DiVAE(max_iter=2, hidden_layer_sizes=(16,), random_state=0).fit(data[0])
    assert est.n_components == 8 and est.transform(data[0][:3]).shape == (3, 8)
    assert est.density_dim_ == data[0].shape[1] == 5
    assert np.isfinite(est.score_samples(data[0])).all()


def test_same_seed_gives_bit_identical_scores_and_global_rng_untouched(data):
    np_state = np.random.get_state()[1].copy()
    torch_state = torch.random.get_rng_state().clone()
    a = DiVAE(**FAST).fit(data[0])
    b = DiVAE(**FAST).fit(data[0])
    np.testing.assert_array_equal(a.score_samples(data[0]), b.score_samples(data[0]))
    assert [h["loss"] for h in a.history_] == [h["loss"] for h in b.history_]
    np.testing.assert_array_equal(np.random.get_state()[1], np_state)
    assert torch.equal(torch.random.get_rng_state(), torch_state)
    c = DiVAE(**{**FAST, "random_state": 1}).fit(data[0])
    assert not np.array_equal(a.score_samples(data[0]), c.score_samples(data[0]))


def test_an_unseeded_teacher_is_seeded_by_random_state_and_a_seeded_one_kept(data):
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    X = data[0]
    np_state = np.random.get_state()[1].copy()
    teachers = [KNNLogDensity(10, max_samples=50),  # a random subsample of the rows
                make_pipeline(StandardScaler(), KNNLogDensity(10, max_samples=50))]
    for teacher in teachers:
        a = DiVAE(**FAST, density=teacher).fit(X).score_samples(X)
        b = DiVAE(**FAST, density=teacher).fit(X).score_samples(X)
        np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(np.random.get_state()[1], np_state)
    assert teachers[0].random_state is None  # the user's object is left as it was
    seeded = DiVAE(**FAST, density=KNNLogDensity(10, max_samples=50, random_state=7),
                   keep_density=True).fit(X)
    assert seeded.density_.random_state == 7


def test_scoring_never_samples(fitted, data):
    state = torch.random.get_rng_state().clone()
    for method in ["score_samples", "transform", "score"]:
        first, second = getattr(fitted, method)(data[0]), getattr(fitted, method)(data[0])
        np.testing.assert_array_equal(first, second)
    assert torch.equal(torch.random.get_rng_state(), state)


def test_outlier_contract(fitted, data):
    X = data[0]
    scores = fitted.score_samples(X)
    np.testing.assert_allclose(fitted.decision_function(X), scores - fitted.offset_)
    labels = fitted.predict(X)
    assert set(np.unique(labels)) == {-1, 1}
    assert np.mean(labels == -1) == pytest.approx(fitted.contamination, abs=0.01)
    np.testing.assert_array_equal(clone(fitted).fit_predict(X), labels)


@pytest.mark.parametrize("anomaly_score", ["log_prior", "elbo", "elbo_at_mean"])
def test_quality_floor_on_separable_data(data, anomaly_score):
    X, y = data
    est = DiVAE(max_iter=60, random_state=0, anomaly_score=anomaly_score).fit(X)
    assert roc_auc_score(y, est.score_samples(X)) >= 0.9


def test_raw_unscaled_columns_still_work():
    X, y = blobs_with_outliers(seed=1)
    X_raw = X * np.array([1000.0, 1.0, 0.001, 50.0, 1.0]) + np.array([5e4, 0, 0, -300, 0])
    est = DiVAE(max_iter=60, random_state=0).fit(X_raw)
    assert roc_auc_score(y, est.score_samples(X_raw)) >= 0.9
    assert np.abs(est.inverse_transform(est.transform(X_raw[:5]))[:, 0] - X_raw[:5, 0]).max() < 1e4


def test_score_is_mean_elbo_without_alignment(fitted, data):
    elbo = fitted._diagnostic_scores(data[0])[1]
    assert fitted.score(data[0]) == pytest.approx(elbo.mean())
    assert DiVAE(anomaly_score="elbo", **FAST).fit(data[0]).score_samples(data[0]) == pytest.approx(
        DiVAE(anomaly_score="log_prior", **FAST).fit(data[0])._diagnostic_scores(data[0])[1]
    )


def test_transform_inverse_transform_sample_and_names(fitted, data):
    Z = fitted.transform(data[0])
    assert Z.shape == (len(data[0]), 2)
    assert fitted.inverse_transform(Z).shape == data[0].shape
    assert fitted.sample(7, random_state=0).shape == (7, 5)
    np.testing.assert_array_equal(fitted.sample(3, random_state=0), fitted.sample(3, random_state=0))
    assert list(fitted.get_feature_names_out()) == ["divae0", "divae1"]
    with pytest.raises(ValueError, match="shape"):
        fitted.inverse_transform(np.zeros((2, 3)))


def test_pandas_output():
    pd = pytest.importorskip("pandas")
    X, _ = blobs_with_outliers()
    df = pd.DataFrame(X, columns=list("abcde"))
    est = DiVAE(**FAST).set_output(transform="pandas").fit(df)
    out = est.transform(df)
    assert list(out.columns) == ["divae0", "divae1"]
    np.testing.assert_array_equal(est.feature_names_in_, list("abcde"))


@pytest.mark.parametrize("prior", ["gmm", "vamp", GaussianMixturePrior(3), VampPrior(5)])
def test_priors_fit_and_score(data, prior):
    est = DiVAE(prior=prior, **FAST).fit(data[0])
    assert np.isfinite(est.score_samples(data[0])).all()
    assert np.isfinite(est.score(data[0]))


@pytest.mark.parametrize(
    "density",
    [KernelDensity(bandwidth=0.5), GaussianMixture(3, random_state=0),
     make_pipeline(StandardScaler(), KNNLogDensity(10, method="knn"))],
)
def test_any_density_estimator_can_teach(data, density):
    est = DiVAE(density=density, keep_density=True, **FAST).fit(data[0])
    assert np.isfinite(est.score_samples(data[0])).all()
    assert est.density_ is not density  # cloned, never fitted in place


def test_nested_parameters_reach_grid_search(data):
    est = DiVAE(prior=GaussianMixturePrior(3), density=KNNLogDensity(10), **FAST)
    params = est.get_params()
    assert params["prior__n_components"] == 3 and params["density__n_neighbors"] == 10
    est.set_params(prior__n_components=4, density__n_neighbors=12)
    fitted = clone(est).set_params(keep_density=True).fit(data[0])
    assert fitted.module_.prior.loc.shape[0] == 4 and fitted.density_.n_neighbors_ == 12
    assert est.prior.n_components == 4 and not hasattr(est.density, "log_density_")


def test_grid_search_with_and_without_labels(data):
    X, y = data
    pipe = make_pipeline(StandardScaler(), DiVAE(**FAST))
    cv = KFold(3, shuffle=True, random_state=0)
    grid = {"divae__alignment_weight": [0.0, 1.0]}
    unsupervised = GridSearchCV(pipe, grid, cv=cv, n_jobs=2).fit(X)
    assert np.isfinite(unsupervised.cv_results_["mean_test_score"]).all()
    supervised = GridSearchCV(pipe, grid, cv=cv, scoring="roc_auc", n_jobs=2).fit(X, y)
    assert supervised.best_score_ > 0.8


def test_pickle_and_joblib_round_trips(fitted, data, tmp_path):
    expected = fitted.score_samples(data[0])
    np.testing.assert_array_equal(pickle.loads(pickle.dumps(fitted)).score_samples(data[0]), expected)
    joblib.dump(fitted, tmp_path / "model.joblib")
    np.testing.assert_array_equal(joblib.load(tmp_path / "model.joblib").score_samples(data[0]), expected)


@pytest.mark.parametrize("bad", [np.nan, np.inf])
def test_bad_input_errors(fitted, data, bad):
    X = data[0].copy()
    X[0, 0] = bad
    with pytest.raises(ValueError, match="NaN|infinity"):
        DiVAE(**FAST).fit(X)
    with pytest.raises(ValueError, match="NaN|infinity"):
        fitted.score_samples(X)
    with pytest.raises(ValueError, match="features"):
        fitted.predict(data[0][:, :3])
    with pytest.raises(ValueError, match="minimum of 3"):
        DiVAE(**FAST).fit(data[0][:2])
    with pytest.raises(ValueError, match="bernoulli"):
        DiVAE(likelihood="bernoulli", **FAST).fit(data[0])


def test_diverging_loss_raises_with_advice_and_leaves_no_half_fit(data, monkeypatch):
    est = DiVAE(**FAST)

    def nan_loss(self, x, *args, **kwargs):
        nan = torch.tensor(float("nan"), dtype=x.dtype)
        return {"loss": nan, "recon": nan, "kl": nan, "align": nan}

    monkeypatch.setattr(VAEModule, "loss", nan_loss)
    with pytest.raises(FloatingPointError, match="learning_rate_init"):
        est.fit(data[0])
    assert not [k for k in vars(est) if k.endswith("_")]


def test_user_arrays_are_not_modified(data):
    X = data[0].copy()
    X.setflags(write=False)
    DiVAE(**FAST).fit(X)
    np.testing.assert_array_equal(X, data[0])


def test_verbose_prints_one_line_per_epoch(data):
    buffer = io.StringIO()
    with redirect_stdout(buffer):
        DiVAE(**{**FAST, "max_iter": 3}, verbose=1).fit(data[0])
    lines = buffer.getvalue().strip().splitlines()
    # teacher (2 lines), budget, what the terms mean, 3 epochs, why it stopped, threshold
    assert len(lines) == 3 + 1 + 3 + 2
    assert "fitting the density teacher on 440 rows" in lines[0]
    assert "teacher KNNLogDensity fitted in" in lines[1]
    assert "training for up to 3 epochs" in lines[2]
    assert all(w in lines[4] for w in ["epoch 1/3", "recon", "kl", "align", "elapsed", "left ~"])
    assert "reached max_iter=3" in lines[7] and "scoring the 440 training rows" in lines[8]


def test_quiet_by_default(data):
    buffer = io.StringIO()
    with redirect_stdout(buffer):
        DiVAE(**{**FAST, "max_iter": 2}).fit(data[0])
    assert buffer.getvalue() == ""


def test_early_stopping_uses_validation_and_stops(data):
    est = DiVAE(max_iter=300, early_stopping=True, n_iter_no_change=3, tol=0.5,
                hidden_layer_sizes=(16,), random_state=0).fit(data[0])
    assert est.n_iter_ < 300 and "valid_loss" in est.history_[-1]


def test_plain_vae_has_no_alignment_term(data):
    est = DiVAE(aligner=None, **FAST).fit(data[0])
    assert est.module_.aligner is None
    assert all(h["align"] == 0 and h["alignment_weight"] == 0 for h in est.history_)


def test_cuda_model_scores_on_cpu(data, device):
    if device != "cuda" or not torch.cuda.is_available():
        pytest.skip("needs --device cuda on a machine with a GPU")
    est = DiVAE(device="cuda", **FAST).fit(data[0])
    restored = pickle.loads(pickle.dumps(est))
    assert next(restored.module_.parameters()).device.type == "cpu"
    assert np.isfinite(restored.score_samples(data[0])).all()


def test_fixed_decoder_std_is_not_learned_and_in_input_units(data):
    X = data[0] * 10.0
    est = DiVAE(**FAST, decoder_std=0.5).fit(X)
    params = dict(est.module_.named_parameters())
    assert "log_noise" not in params
    raw_std = torch.exp(est.module_.log_noise) * est.module_.scale
    np.testing.assert_allclose(raw_std.numpy(), 0.5, rtol=1e-6)
    assert "log_noise" in dict(DiVAE(**FAST).fit(X).module_.named_parameters())


def test_beta_start_sets_where_the_kl_warm_up_begins(data):
    est = DiVAE(**FAST, beta=2.0, beta_start=0.1, beta_warmup=0.5).fit(data[0])
    betas = [h["beta"] for h in est.history_]
    assert betas[0] == pytest.approx(0.2)
    assert betas[-1] == pytest.approx(2.0)
    assert np.all(np.diff(betas) >= 0)
    assert DiVAE(**FAST).fit(data[0]).history_[0]["beta"] == 0.0


def test_feature_residuals_are_the_decoders_standardised_errors(fitted, data):
    X = data[0][:20]
    r = fitted.feature_residuals(X)
    assert r.shape == X.shape
    with torch.no_grad():
        x = torch.from_numpy(X)
        dist = fitted.module_.likelihood_distribution(fitted.module_.posterior_mean(x))
        nll = -dist.log_prob(x).numpy()
        log_std = torch.log(dist.base_dist.scale).sum(-1).numpy()
    expected = 0.5 * (r**2).sum(1) + log_std + 0.5 * X.shape[1] * np.log(2 * np.pi)
    np.testing.assert_allclose(nll, expected, rtol=1e-10)


def test_teacher_is_kept_only_on_request_and_the_model_is_smaller_without_it(data):
    light = DiVAE(**FAST).fit(data[0])
    heavy = DiVAE(**FAST, keep_density=True).fit(data[0])
    assert light.density_ is None and isinstance(heavy.density_, KNNLogDensity)
    np.testing.assert_array_equal(light.score_samples(data[0]), heavy.score_samples(data[0]))
    assert len(pickle.dumps(light)) < len(pickle.dumps(heavy)) - data[0].shape[0] * 2 * 8
    from skdivae.model_selection import density_agreement_score

    assert -1 <= density_agreement_score(heavy, data[0]) <= 1
    with pytest.raises(ValueError, match="keep_density=True"):
        density_agreement_score(light, data[0])


def test_scoring_chunks_follow_the_network_size_and_do_not_change_scores(data):
    from skdivae._torch_utils import chunk_rows

    est = DiVAE(**FAST).fit(data[0])
    points = 2 * est.n_components
    layers = max(max(est.hidden_layer_sizes), data[0].shape[1], 2 * est.n_components)
    prior = est.module_.prior.scoring_width(est.n_components)  # at every point only if
    prior_points = points if est.module_.prior.kl_draws() > 0 else 1  # its KL takes draws
    per_row = max(points * layers, prior_points * prior)
    assert chunk_rows(est.module_, points) == min(16384, max(256, 2**20 // per_row))
    assert chunk_rows(est.module_) == min(16384, max(256, 2**20 // max(layers, prior)))
    X = np.vstack([data[0]] * 8)  # several chunks
    whole = est.score_samples(X)
    parts = np.concatenate([est.score_samples(X[i : i + 37]) for i in range(0, len(X), 37)])
    np.testing.assert_allclose(whole, parts, rtol=1e-12, atol=1e-12)


def test_scoring_chunks_stay_bounded_with_a_very_wide_latent_space(data):
    # the ELBO's 2L sigma points make a row cost about 2L * 2L numbers: 256 rows of a
    # 200-dimensional latent space would hold 41 million, so chunks get fewer rows
    from skdivae._torch_utils import MAX_CHUNK_ELEMENTS, chunk_rows

    est = DiVAE(n_components=200, hidden_layer_sizes=(8,), max_iter=1, random_state=0)
    est.fit(data[0][:60])
    points, widest = 2 * 200, 2 * 200
    rows = chunk_rows(est.module_, points)
    assert 1 <= rows < 256 and rows * points * widest <= MAX_CHUNK_ELEMENTS
    X = np.vstack([data[0]] * 2)
    np.testing.assert_allclose(est.score_samples(X), np.concatenate(
        [est.score_samples(X[i : i + 50]) for i in range(0, len(X), 50)]), rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("prior", ["normal", "gmm"])
def test_elbo_at_mean_is_the_elbo_with_one_decoder_pass(data, prior, monkeypatch):
    est = DiVAE(prior=prior, anomaly_score="elbo_at_mean", **FAST).fit(data[0])
    X = np.vstack([data[0]] * 8)  # several chunks
    fast = est.score_samples(X)
    with torch.no_grad():
        x = torch.as_tensor(X, dtype=torch.float64)
        direct = est.module_.elbo(x, recon_points="mean").numpy()
        sigma = est.module_.elbo(x).numpy()
    np.testing.assert_allclose(fast, direct, rtol=1e-12, atol=1e-12)
    assert not np.allclose(fast, sigma)  # the sigma points' curvature term is left out
    # Same KL as the default ELBO: only the reconstruction term moves.
    sigma_est = clone(est).set_params(anomaly_score="elbo").fit(data[0])
    np.testing.assert_allclose(sigma_est.score_samples(X), sigma, rtol=1e-12, atol=1e-12)
    # One decoder pass per row, in chunks as wide as the widest layer allows.
    calls = []
    decoder = est.module_.decoder
    monkeypatch.setattr(decoder, "forward", lambda z, f=decoder.forward: calls.append(z.shape) or f(z))
    est.score_samples(data[0])
    assert sum(np.prod(shape[:-1]) for shape in calls) == len(data[0])
    monkeypatch.undo()
    # Deterministic, chunk by chunk and after pickling.
    parts = np.concatenate([est.score_samples(X[i : i + 37]) for i in range(0, len(X), 37)])
    np.testing.assert_allclose(parts, fast, rtol=1e-12, atol=1e-12)
    np.testing.assert_array_equal(pickle.loads(pickle.dumps(est)).score_samples(X), fast)


def test_default_teacher_indexes_every_row_below_its_cap(monkeypatch):
    from skdivae import _training_data
    from skdivae._training_data import DENSITY_MAX_SAMPLES, fit_density

    X = np.random.default_rng(0).normal(size=(400, 5))
    est = DiVAE(max_iter=2, keep_density=True, random_state=0).fit(X)
    assert est.density_.max_samples == DENSITY_MAX_SAMPLES
    assert est.density_.sample_indices_ is None
    # Past the cap the index holds a subsample and every row still gets a target.
    monkeypatch.setattr(_training_data, "DENSITY_MAX_SAMPLES", 100)
    teacher = fit_density(None, X, 3, seed=0)
    assert teacher.sample_indices_.shape == (100,) and teacher.log_density_.shape == (400,)


def test_rows_whose_decision_is_not_a_number_are_outliers(data):
    est = DiVAE(**FAST).fit(data[0])
    est.offset_ = float("nan")  # every decision is NaN
    est.offsets_ = np.full_like(est.offsets_, np.nan)
    est.score_quantiles_ = np.full_like(est.score_quantiles_, np.nan)
    assert (est.predict(data[0]) == -1).all()


def test_a_refit_with_invalid_parameters_leaves_the_estimator_unfitted(data):
    from sklearn.exceptions import NotFittedError
    from sklearn.utils._param_validation import InvalidParameterError

    est = DiVAE(**FAST).fit(data[0])
    est.set_params(alignment_weight=-1.0)
    with pytest.raises(InvalidParameterError, match="alignment_weight"):
        est.fit(data[0])
    with pytest.raises(NotFittedError):
        est.predict(data[0])

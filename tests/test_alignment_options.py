"""The direct aligner's options, the paper's formulation, the combined score and trimming."""

import numpy as np
import pytest
import torch
from sklearn.base import clone

from skdivae import DiVAE, DirectAligner
from skdivae._build import build_module, resolve_aligner
from skdivae._nn.aligners import precision_weight
from skdivae.priors import GaussianMixturePrior, StandardNormalPrior

FAST = dict(max_iter=3, hidden_layer_sizes=(8,), batch_size=32, random_state=0)


def _module(aligner, n_features=3):
    torch.manual_seed(0)
    return build_module(
        n_features=n_features, n_latent=2, hidden_layer_sizes=(8,), activation="relu",
        prior=StandardNormalPrior(), aligner=aligner, likelihood="gaussian",
        center=np.zeros(n_features), scale=np.ones(n_features),
        density_dim=2, X_train=torch.randn(20, n_features), generator=torch.Generator(),
    ).double()


def test_paper_formulation_is_named_and_reachable_by_string():
    paper = DirectAligner.paper()
    assert paper.get_params() == {
        "point": "sample", "reduction": "sqrt", "scaling": "weight", "calibration": None,
        "per_feature": False, "delta": 1.0, "move_codes": True,
    }
    assert resolve_aligner("direct_paper").get_params() == paper.get_params()
    assert resolve_aligner("direct").get_params() == DirectAligner().get_params()


def test_standardized_mean_penalty_is_huber_of_residual_over_error():
    module = DirectAligner(reduction="mean", scaling="standardize", calibration=None,
                           per_feature=False).build(n_latent=2, n_features=4, density_dim=2)
    pred = torch.tensor([0.0, 0.3, 5.0], dtype=torch.float64)
    target = torch.zeros(3, dtype=torch.float64)
    err = torch.tensor([1.0, 0.1, 0.5], dtype=torch.float64)
    # r / err = 0, 3, 10 -> Huber_1 = 0, 2.5, 9.5
    value = module.penalty(pred, target, precision_weight(err))
    assert value.item() == pytest.approx((0 + 2.5 + 9.5) / 3)


def test_paper_penalty_unchanged_and_per_feature_multiplies():
    pred = torch.tensor([0.5, 0.0], dtype=torch.float64)
    target = torch.zeros(2, dtype=torch.float64)
    w = precision_weight(torch.tensor([0.1, 1.0], dtype=torch.float64))
    paper = DirectAligner.paper().build(n_latent=2, n_features=7, density_dim=2)
    assert paper.penalty(pred, target, w).item() == pytest.approx(np.sqrt(10 * 0.125 / 2))
    scaled = clone(DirectAligner.paper()).set_params(per_feature=True)
    module = scaled.build(n_latent=2, n_features=7, density_dim=2)
    assert module.penalty(pred, target, w).item() == pytest.approx(7 * np.sqrt(10 * 0.125 / 2))


@pytest.mark.parametrize("kwargs, multiplier", [
    (dict(n_components=2, prior="normal"), 6.0),  # N(0, I) in 2-D: scaled by the 6 features
    (dict(n_components=1, prior="normal"), 6.0),
    (dict(n_components=2), 1.0),  # prior="auto" gives the mixture in 2-D: plain
    (dict(n_components=3, prior="normal"), 1.0),  # 3 or more dimensions: plain
    (dict(n_components=2, prior="vamp"), 1.0),
    (dict(n_components=2, prior="normal", aligner=DirectAligner(per_feature=False)), 1.0),
    (dict(n_components=8, aligner=DirectAligner(per_feature=True)), 6.0),
    (dict(n_components=2, prior="normal", aligner="direct_paper"), 1.0),
])
def test_auto_options_read_the_prior_in_low_dimensions(
        kwargs, multiplier, no_convergence_warnings):
    from skdivae import DiVAE

    X = np.random.default_rng(0).normal(size=(60, 6))
    est = DiVAE(max_iter=1, hidden_layer_sizes=(8,), random_state=0, **kwargs).fit(X)
    assert est.module_.aligner.multiplier == multiplier
    if est.aligner == "direct" and kwargs["n_components"] <= 2:
        # reduction="auto": the mean with N(0, I), the square root with a learnable prior
        normal = kwargs.get("prior") == "normal"
        assert est.module_.aligner.reduction == ("mean" if normal else "sqrt")
        assert est.module_.aligner.delta == (10.0 if normal else 1.0)
    elif est.aligner == "direct":
        assert (est.module_.aligner.reduction, est.module_.aligner.delta) == ("mean", 1.0)
    # build alone knows no prior: "auto" reads as False unless told
    assert DirectAligner().build(n_latent=2, n_features=6, density_dim=2).multiplier == 1.0
    assert DirectAligner().build(n_latent=2, n_features=6, density_dim=2,
                                 fixed_normal_prior=True).multiplier == 6.0


@pytest.mark.parametrize("calibration", ["offset", "affine"])
def test_calibration_is_learned_and_gets_gradients(calibration):
    module = _module(DirectAligner(calibration=calibration))
    x = torch.randn(16, 3, dtype=torch.float64)
    target, err = torch.randn(16, dtype=torch.float64), torch.ones(16, dtype=torch.float64)
    module.loss(x, target, precision_weight(err))["align"].backward()
    names = {"offset"} | ({"log_slope"} if calibration == "affine" else set())
    for name, p in module.aligner.named_parameters():
        assert name in names and p.grad is not None and p.grad.abs() > 0
    with torch.no_grad():
        module.aligner.offset.fill_(2.5)
    assert torch.allclose(
        module.aligned_log_prior(x),
        module.aligner.calibrate(module.log_prior_at_mean(x)),
    )


@pytest.mark.parametrize("point", ["mean", "sample"])
def test_move_codes_false_trains_the_prior_and_offset_but_not_the_encoder(point):
    def grads(move_codes):
        torch.manual_seed(0)
        module = build_module(
            n_features=3, n_latent=2, hidden_layer_sizes=(8,), activation="relu",
            prior=GaussianMixturePrior(n_components=3),
            aligner=DirectAligner(point=point, move_codes=move_codes),
            likelihood="gaussian", center=np.zeros(3), scale=np.ones(3), density_dim=2,
            X_train=torch.randn(20, 3), generator=torch.Generator(),
        ).double()
        x = torch.randn(16, 3, dtype=torch.float64)
        target, w = torch.randn(16, dtype=torch.float64), torch.ones(16, dtype=torch.float64)
        module.loss(x, target, w, generator=torch.Generator().manual_seed(1))["align"].backward()
        return {name: p.grad for name, p in module.named_parameters()}

    moved, shaped = grads(True), grads(False)
    for name, grad in shaped.items():
        if name.startswith("encoder"):
            assert grad is None or not grad.any(), name
        elif name.startswith(("prior", "aligner")):
            assert grad is not None and grad.abs().sum() > 0, name
            assert torch.allclose(grad, moved[name]), name  # the same penalty, the same pull
    assert any(g is not None and g.any() for n, g in moved.items() if n.startswith("encoder"))


def test_mean_point_makes_the_alignment_term_independent_of_the_sample():
    module = _module(DirectAligner(point="mean"))
    x = torch.randn(16, 3, dtype=torch.float64)
    target, w = torch.randn(16, dtype=torch.float64), torch.ones(16, dtype=torch.float64)
    a = [module.loss(x, target, w)["align"].item() for _ in range(2)]
    assert a[0] == a[1]
    sampled = _module(DirectAligner(point="sample"))
    b = [sampled.loss(x, target, w)["align"].item() for _ in range(2)]
    assert b[0] != b[1]


def test_bad_aligner_option_is_refused_in_fit():
    X = np.random.default_rng(0).normal(size=(40, 3))
    with pytest.raises(ValueError, match="'calibration' parameter of DirectAligner"):
        DiVAE(aligner=DirectAligner(calibration="scale"), **FAST).fit(X)
    with pytest.raises(ValueError, match="'point' parameter of DirectAligner"):
        DiVAE(aligner=DirectAligner(point="median"), **FAST).fit(X)


def test_elbo_weight_leaves_samples_out_of_recon_and_kl():
    module = _module(None)
    x = torch.randn(8, 3, dtype=torch.float64)
    keep = torch.tensor([1, 1, 1, 1, 0, 0, 0, 0], dtype=torch.float64)
    x_bad = x.clone()
    x_bad[4:] = 1e3  # left out: must not move the terms
    torch.manual_seed(3)
    a = module.loss(x, elbo_weight=keep)
    torch.manual_seed(3)
    b = module.loss(x_bad, elbo_weight=keep)
    assert a["recon"].item() == pytest.approx(b["recon"].item())
    assert a["kl"].item() == pytest.approx(b["kl"].item())


@pytest.mark.parametrize("target", [
    np.repeat(np.arange(5.0), 20),  # discrete: ties at every level
    np.zeros(100),  # a constant teacher
    np.random.default_rng(0).normal(size=100),
], ids=["discrete", "constant", "continuous"])
def test_trim_fraction_leaves_out_the_same_number_of_rows_whatever_the_ties(target):
    from skdivae._training_data import training_arrays, trimmed_count

    X = np.zeros((len(target), 2))
    for fraction in (0.05, 0.1, 0.49):
        elbo_weight = training_arrays(X, target, np.ones(len(target)), fraction, "cpu")[3].numpy()
        dropped = np.flatnonzero(elbo_weight == 0)
        assert len(dropped) == trimmed_count(len(target), fraction) < len(target) / 2 + 1
        assert target[dropped].max() <= np.delete(target, dropped).min()  # the lowest
        tie_free = np.arange(len(target), dtype=float)  # the count of numpy's quantile rule
        assert len(dropped) == int((tie_free <= np.quantile(tie_free, fraction)).sum())


def test_trim_fraction_fits_and_changes_the_model():
    rng = np.random.default_rng(0)
    X = np.vstack([rng.normal(size=(200, 4)), rng.uniform(-8, 8, size=(20, 4))])
    plain = DiVAE(**FAST).fit(X)
    trimmed = DiVAE(trim_fraction=0.1, **FAST).fit(X)
    assert np.isfinite(trimmed.score_samples(X)).all()
    assert not np.allclose(plain.score_samples(X), trimmed.score_samples(X))


def test_combined_score_is_the_sum_of_robust_z_scores():
    rng = np.random.default_rng(0)
    X = np.vstack([rng.normal(size=(200, 4)), rng.uniform(-8, 8, size=(20, 4))])
    est = DiVAE(anomaly_score="elbo+log_prior", **FAST).fit(X)
    elbo, lp = est._apply("elbo", X), est._apply("log_prior_at_mean", X)
    parts = []
    for values in (elbo, lp):
        q25, q50, q75 = np.percentile(values, [25, 50, 75])
        parts.append((values - q50) / (q75 - q25))
    np.testing.assert_allclose(est.score_samples(X), parts[0] + parts[1])
    np.testing.assert_array_equal(est.score_samples(X), est.score_samples(X))
    assert est.score_center_.shape == est.score_scale_.shape == (2,)


def _robust_z_parts(est, X):
    parts = []
    for values in (est._apply("elbo", X), est._apply("log_prior_at_mean", X)):
        q25, q50, q75 = np.percentile(values, [25, 50, 75])
        parts.append((values - q50) / (q75 - q25))
    return parts


def test_the_min_score_is_the_smaller_robust_z_score_of_elbo_and_log_prior():
    rng = np.random.default_rng(0)
    X = np.vstack([rng.normal(size=(200, 4)), rng.uniform(-8, 8, size=(20, 4))])
    assert DiVAE().anomaly_score == "elbo"  # the default (docs/results/score_study.md)
    est = DiVAE(**FAST, anomaly_score="min(elbo,log_prior)").fit(X)
    z_elbo, z_prior = _robust_z_parts(est, X)
    np.testing.assert_allclose(est.score_samples(X), np.minimum(z_elbo, z_prior))
    # Either part alone flags a row: the score is never above either part.
    assert (est.score_samples(X) <= z_elbo + 1e-12).all()
    assert (est.score_samples(X) <= z_prior + 1e-12).all()
    assert np.mean(est.predict(X) == -1) == pytest.approx(est.contamination, abs=0.01)


@pytest.mark.parametrize("fitted_with", ["elbo", "log_prior", "elbo_at_mean"])
@pytest.mark.parametrize("switched_to", ["elbo+log_prior", "min(elbo,log_prior)"])
def test_combined_scores_can_be_chosen_after_fit(fitted_with, switched_to):
    rng = np.random.default_rng(0)
    X = np.vstack([rng.normal(size=(200, 4)), rng.uniform(-8, 8, size=(20, 4))])
    est = DiVAE(anomaly_score=fitted_with, **FAST).fit(X)
    direct = clone(est).set_params(anomaly_score=switched_to).fit(X)
    est.set_params(anomaly_score=switched_to)
    np.testing.assert_allclose(est.score_samples(X), direct.score_samples(X))
    np.testing.assert_allclose(est.decision_function(X), direct.decision_function(X))


@pytest.mark.parametrize("switched_to", ["log_prior", "elbo", "elbo_at_mean", "elbo+log_prior"])
def test_switching_the_score_after_fit_keeps_the_contamination_share(switched_to):
    rng = np.random.default_rng(0)
    X = np.vstack([rng.normal(size=(200, 4)), rng.uniform(-8, 8, size=(20, 4))])
    est = DiVAE(contamination=0.2, **FAST).fit(X)
    est.set_params(anomaly_score=switched_to)
    assert np.mean(est.predict(X) == -1) == pytest.approx(0.2, abs=0.01)
    direct = clone(est).fit(X)
    np.testing.assert_allclose(est.decision_function(X), direct.decision_function(X))
    assert direct.offset_ == pytest.approx(est._current_offset())


def test_log_prior_score_is_the_aligned_log_prior_in_the_teachers_units():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(200, 4))
    est = DiVAE(anomaly_score="log_prior", **FAST).fit(X)
    raw = est._apply("log_prior_at_mean", X)
    offset = float(est.module_.aligner.offset.detach())
    np.testing.assert_allclose(est.score_samples(X), raw + offset)
    paper = DiVAE(aligner="direct_paper", anomaly_score="log_prior", **FAST).fit(X)
    np.testing.assert_allclose(paper.score_samples(X), paper._apply("log_prior_at_mean", X))


def test_default_teacher_is_knn_with_thirty_neighbours_on_the_latent_dimension():
    X = np.random.default_rng(0).normal(size=(200, 12))
    est = DiVAE(**FAST, keep_density=True).fit(X)
    assert est.density_.method == "knn" and est.density_.n_neighbors == 30
    assert est.density_.n_components_ == est.n_components


@pytest.mark.parametrize("anomaly_score", ["elbo", "min(elbo,log_prior)"])
def test_contamination_can_be_changed_after_fit_without_a_refit(anomaly_score):
    rng = np.random.default_rng(0)
    X = np.vstack([rng.normal(size=(200, 4)), rng.uniform(-8, 8, size=(20, 4))])
    est = DiVAE(anomaly_score=anomaly_score, **FAST).fit(X)
    for share in (0.05, 0.2, 0.013):
        direct = clone(est).set_params(contamination=share).fit(X)
        est.set_params(contamination=share)
        np.testing.assert_allclose(est.decision_function(X), direct.decision_function(X),
                                   atol=1e-9 if share != 0.013 else 0.05)
        assert np.mean(est.predict(X) == -1) == pytest.approx(share, abs=0.01)
    with pytest.raises(ValueError, match="'contamination' parameter of DiVAE"):
        est.set_params(contamination=0.9).predict(X)


def test_contamination_auto_flags_rows_below_the_tukey_fence():
    rng = np.random.default_rng(0)
    X = np.vstack([rng.normal(size=(400, 4)), rng.uniform(-9, 9, size=(8, 4))])
    est = DiVAE(contamination="auto", **FAST).fit(X)
    train = est.score_samples(X)
    q1, q3 = np.percentile(train, [25, 75])
    assert est.offset_ == pytest.approx(q1 - 1.5 * (q3 - q1), rel=1e-6)
    flagged = est.predict(X) == -1
    assert 0 < flagged.mean() < 0.1
    assert flagged[-8:].mean() > flagged[:-8].mean()


def test_predict_proba_is_anchored_at_the_threshold():
    rng = np.random.default_rng(0)
    X = np.vstack([rng.normal(size=(300, 4)), rng.uniform(-8, 8, size=(20, 4))])
    est = DiVAE(**FAST).fit(X)
    for share in (0.1, 0.03, "auto"):
        est.set_params(contamination=share)
        proba = est.predict_proba(X)
        assert proba.shape == (len(X), 2)
        np.testing.assert_allclose(proba.sum(axis=1), 1.0)
        # predict flags a row exactly when its outlier probability is above one half
        np.testing.assert_array_equal(est.predict(X) == -1, proba[:, 1] > 0.5)
        scores = est.score_samples(X)
        order = np.argsort(scores)
        assert (np.diff(proba[order, 1]) <= 1e-12).all()  # lower score, more outlying
    assert est.predict_proba(np.full((1, 4), 1e3))[0, 1] == 1.0


def test_scores_that_overflow_count_as_the_most_anomalous_in_the_scorer():
    from skdivae.model_selection import anomaly_roc_auc

    class Fixed:
        def score_samples(self, X):
            return np.array([0.0, 1.0, 2.0, -np.inf, np.nan])

    assert anomaly_roc_auc(Fixed(), np.zeros((5, 1)), [0, 0, 0, 1, 1]) == 1.0
    with pytest.raises(ValueError, match="only the label 1"):
        anomaly_roc_auc(Fixed(), np.zeros((5, 1)), [1, 1, 1, 1, 1])


@pytest.mark.parametrize("n_latent, expected", [(1, "sqrt"), (2, "sqrt"), (3, "mean"), (8, "mean")])
def test_auto_reduction_takes_the_square_root_in_low_dimensions(n_latent, expected):
    # docs/results/aligner_2d_mixture.md: in a 1-2-D latent space the square root; elsewhere
    # the plain mean chosen in the tabular regime.
    assert DirectAligner().reduction == "auto"
    module = DirectAligner().build(n_latent=n_latent, n_features=4, density_dim=2)
    assert module.reduction == expected
    for explicit in ("mean", "sqrt"):
        built = DirectAligner(reduction=explicit).build(n_latent=n_latent, n_features=4,
                                                        density_dim=2)
        assert built.reduction == explicit


def test_unknown_reduction_is_refused_at_fit(small_tabular):
    est = DiVAE(max_iter=1, aligner=DirectAligner(reduction="median"))
    with pytest.raises(ValueError, match="'reduction' parameter of DirectAligner"):
        est.fit(small_tabular)
    assert not hasattr(est, "module_")


def test_a_direct_aligner_subclass_with_the_contract_build_still_builds(no_convergence_warnings):
    """A subclass written to the aligner contract (build without fixed_normal_prior) is
    called as the contract says."""
    from skdivae import DiVAE

    class Halved(DirectAligner):
        def build(self, *, n_latent, n_features, density_dim):
            module = super().build(n_latent=n_latent, n_features=n_features, density_dim=density_dim)
            module.multiplier *= 0.5
            return module

    X = np.random.default_rng(0).normal(size=(60, 6))
    est = DiVAE(n_components=2, prior="normal", aligner=Halved(), max_iter=1,
                hidden_layer_sizes=(8,), random_state=0).fit(X)
    assert est.module_.aligner.multiplier == 0.5

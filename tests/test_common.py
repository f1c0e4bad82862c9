"""scikit-learn's estimator checks on every public estimator (fast instances)."""

from sklearn.utils.estimator_checks import parametrize_with_checks

from skdivae import DiVAE, KNNLogDensity

FAST = dict(max_iter=3, hidden_layer_sizes=(8,), batch_size=32, random_state=0)

ESTIMATORS = [
    KNNLogDensity(n_neighbors=3),
    KNNLogDensity(n_neighbors=5, method="knn"),
    KNNLogDensity(n_neighbors=5, n_components=1, intrinsic_dim="twonn"),
    KNNLogDensity(n_neighbors=5, method="pak"),
    KNNLogDensity(n_neighbors=5, max_samples=0.5, random_state=0),
    KNNLogDensity(n_neighbors=5, n_components=1, whiten=True),
    DiVAE(**FAST),
    DiVAE(aligner=None, **FAST),
    DiVAE(aligner="direct_paper", **FAST),
    DiVAE(anomaly_score="elbo+log_prior", trim_fraction=0.1, **FAST),
    DiVAE(prior="gmm", **FAST),
    DiVAE(prior="gmm", anomaly_score="elbo_at_mean", **FAST),
    DiVAE(prior="vamp", anomaly_score="log_prior", **FAST),
    DiVAE(aligner="flow", **FAST),
    DiVAE(prior="gmm", aligner="flow", **FAST),
    DiVAE(prior="vamp", aligner="flow", **FAST),
    # prior="auto" in 1-2 dimensions: the 40-component mixture and the square-root penalty
    DiVAE(n_components=2, **FAST),
    DiVAE(n_components=1, **FAST),
    # N(0, I) in 2-D: the default aligner's strong penalty (per feature, mean, delta 10)
    DiVAE(n_components=2, prior="normal", **FAST),
    # early stopping: the common checks' read-only memmaps are fitted in memory
    DiVAE(early_stopping=True, **FAST),
    # alignment at probe points off the data, with the mixture and the VampPrior too
    DiVAE(alignment_probes=0.5, **FAST),
    DiVAE(alignment_probes=1.0, prior="vamp", anomaly_score="min(elbo,log_prior)", **FAST),
]


@parametrize_with_checks(ESTIMATORS)
def test_sklearn_compatible_estimator(estimator, check):
    check(estimator)

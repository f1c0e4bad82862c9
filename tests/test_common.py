"""scikit-learn's estimator checks on every public estimator (fast instances)."""

from sklearn.utils.estimator_checks import parametrize_with_checks

from skdivae import KNNLogDensity

ESTIMATORS = [
    KNNLogDensity(n_neighbors=3),
    KNNLogDensity(n_neighbors=5, method="knn"),
    KNNLogDensity(n_neighbors=5, n_components=1, intrinsic_dim="twonn"),
]


@parametrize_with_checks(ESTIMATORS)
def test_sklearn_compatible_estimator(estimator, check):
    check(estimator)

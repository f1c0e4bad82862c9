"""skdivae: density-informed variational autoencoders as scikit-learn estimators."""

from ._knn_density import KNNLogDensity

__version__ = "0.1.0.dev0"

__all__ = ["KNNLogDensity", "__version__"]

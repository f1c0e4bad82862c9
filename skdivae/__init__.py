"""skdivae: density-informed variational autoencoders as scikit-learn estimators."""

from ._blockwise import score_blockwise
from ._collapse import PosteriorCollapseWarning
from ._knn_density import DuplicateRowsWarning
from ._divae import DiVAE
from ._knn_density import KNNLogDensity
from ._archive_checks import UnsafeArchiveError
from ._archive_reader import load
from ._archive_writer import save
from ._residuals import feature_residuals, residual_names
from ._version import __version__
from .aligners import DirectAligner, FlowAligner
from .priors import GaussianMixturePrior, StandardNormalPrior, VampPrior


__all__ = [
    "DiVAE",
    "KNNLogDensity",
    "StandardNormalPrior",
    "GaussianMixturePrior",
    "VampPrior",
    "DirectAligner",
    "FlowAligner",
    "save",
    "load",
    "UnsafeArchiveError",
    "PosteriorCollapseWarning",
    "DuplicateRowsWarning",
    "score_blockwise",
    "feature_residuals",
    "residual_names",
    "__version__",
]

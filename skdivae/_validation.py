"""The one place that imports scikit-learn's private parameter-validation helpers.

scikit-learn calls ``_parameter_constraints`` a private mechanism; keeping
every import of it here means a change upstream touches one file.
"""

import numpy as np
from sklearn.utils._param_validation import (  # noqa: F401  (re-exported)
    HasMethods,
    Interval,
    RealNotInt,
    StrOptions,
)

__all__ = [
    "HasMethods",
    "Interval",
    "RealNotInt",
    "StrOptions",
    "validate_params",
    "training_targets",
]


def validate_params(estimator):
    """Validate ``estimator.get_params(deep=False)`` against its ``_parameter_constraints``."""
    estimator._validate_params()


def training_targets(density, X):
    """Density targets for the training rows of ``X`` and their standard errors.

    Uses the leave-one-out values a :class:`~skdivae.KNNLogDensity` stores at
    fit time; for any other estimator, ``score_samples(X)`` with unit errors.
    """
    log_density = getattr(density, "log_density_", None)
    if log_density is not None and len(log_density) == X.shape[0]:
        return np.asarray(log_density, float), np.asarray(density.log_density_err_, float)
    target = np.asarray(density.score_samples(X), dtype=float)
    return target, np.ones_like(target)

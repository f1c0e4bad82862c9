"""Samples with an exactly known log-density, for checking density estimators.

Private: shared by the density tests (``tests/test_knn_density.py``) and the
benchmark ``benchmarks/bench_knn_density.py``, so both draw the same samples.
"""

import numpy as np
from scipy.special import logsumexp


def standard_normal(n, d, rng):
    """Samples of N(0, I_d) and their exact log-density."""
    X = rng.normal(size=(n, d))
    return X, -0.5 * d * np.log(2 * np.pi) - 0.5 * (X**2).sum(axis=1)


def gaussian_mixture(n, d, rng, scales=(0.2, 0.5, 1.0)):
    """Equal-weight isotropic mixture with components of different widths."""
    scales = np.asarray(scales)
    means = rng.uniform(-3, 3, size=(scales.size, d))
    comp = rng.integers(scales.size, size=n)
    X = means[comp] + rng.normal(size=(n, d)) * scales[comp, None]
    log_comp = np.stack(
        [
            -0.5 * d * np.log(2 * np.pi * s**2) - 0.5 * ((X - m) ** 2).sum(axis=1) / s**2
            for m, s in zip(means, scales)
        ],
        axis=1,
    )
    return X, logsumexp(log_comp, axis=1) - np.log(scales.size)

"""DiVAE's anomaly scores: which module method each ``anomaly_score`` reads, and the
robust combination of the ELBO with the aligned log-prior."""

import numpy as np

#: ``anomaly_score`` -> the ``VAEModule`` method that computes it (None: combined).
SCORES = {
    "log_prior": "aligned_log_prior",
    "elbo": "elbo",
    "elbo_at_mean": "elbo_at_mean",
    "elbo+log_prior": None,
}
#: The parts of the combined score, each put on a robust scale by its training scores.
COMBINED = ("elbo", "log_prior_at_mean")


def robust_scale(values):
    """``(median, interquartile range)`` of ``values``: a scale that the anomalies in
    the training data do not set (the range is floored at 1e-12)."""
    q25, q50, q75 = np.percentile(values, [25, 50, 75])
    return q50, max(q75 - q25, 1e-12)


def combine(parts, center, scale):
    """Sum of the parts, each centred and divided by its training scale."""
    return sum((p - c) / s for p, c, s in zip(parts, center, scale))

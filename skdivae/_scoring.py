"""DiVAE's anomaly scores: which module method each ``anomaly_score`` reads, and the
robust combinations of the ELBO with the aligned log-prior."""

import numpy as np

#: The score that reads the aligned prior as well: a row is as normal as the *less* normal
#: of its two parts (robust z-scores of the ELBO and the aligned log-prior).
MIN_SCORE = "min(elbo,log_prior)"
#: The default score: the ELBO (docs/results/score_study.md: after the early-stopping fix the
#: study's rule, written before its run, no longer adopts MIN_SCORE).
DEFAULT_SCORE = "elbo"
#: ``anomaly_score`` -> the ``VAEModule`` method that computes it (None: combined).
SCORES = {
    "log_prior": "aligned_log_prior",
    "elbo": "elbo",
    "elbo_at_mean": "elbo_at_mean",
    "elbo+log_prior": None,
    MIN_SCORE: None,
}
#: The parts of the combined scores, each put on a robust scale by its training scores.
COMBINED = ("elbo", "log_prior_at_mean")


def robust_scale(values):
    """``(median, interquartile range)`` of ``values``: a scale that the anomalies in
    the training data do not set. Where more than half the values tie, up to rounding
    (the range is at most 1e-9 of the median's size), the mean absolute deviation from
    the median stands in, so that the other rows keep z-scores in the units of their
    spread; the scale is floored at 1e-12."""
    q25, q50, q75 = np.percentile(values, [25, 50, 75])
    scale = q75 - q25
    if not scale > 1e-9 * max(1.0, abs(q50)):
        scale = float(np.mean(np.abs(np.asarray(values) - q50)))
    return q50, max(scale, 1e-12)


def combine(parts, center, scale, how="elbo+log_prior"):
    """The parts, each centred and divided by its training scale, then summed
    (``"elbo+log_prior"``) or reduced to their minimum (``"min(elbo,log_prior)"``: a
    row is flagged when either part flags it)."""
    z = [(p - c) / s for p, c, s in zip(parts, center, scale)]
    if how == MIN_SCORE:
        return np.minimum.reduce(z)
    return sum(z)

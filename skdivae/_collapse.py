"""The check, after fit, that the encoder uses its input (no posterior collapse)."""

import warnings

import numpy as np

from ._fitting import fit_seed, train_network
from ._torch_utils import batched_no_grad

#: A latent dimension is active when the posterior mean varies across the training rows
#: with a variance above this (the "active units" of Burda et al., 2016, with their
#: threshold); with no active dimension every row gets the same code.
ACTIVE_VARIANCE = 0.01
#: The rows the check reads at most (evenly spaced, so sorted data are covered).
CHECK_ROWS = 10_000


class PosteriorCollapseWarning(UserWarning):
    """Warning from :meth:`DiVAE.fit` when no latent dimension is used.

    Every row then gets nearly the same code, and the ELBO scores each row by one
    Gaussian per feature around the data's mean. On data with one mode that can be
    right; on data in several clusters the rows between them score as the most normal.
    Filter it with ``warnings.filterwarnings("ignore", category=PosteriorCollapseWarning)``
    once you have checked that a Gaussian per feature suits your data.

    Examples
    --------
    >>> from skdivae import PosteriorCollapseWarning
    >>> issubclass(PosteriorCollapseWarning, UserWarning)
    True
    """


#: The mini-batch of the one refit that ``batch_size="auto"`` makes of a collapsed fit
#: (docs/results/collapse_refit.md).
COLLAPSE_BATCH_SIZE = 8


def active_dimensions(est, X):
    """The number of latent dimensions of the fitted ``est`` whose posterior mean varies
    over the rows of ``X`` (an evenly spaced subsample of at most ``CHECK_ROWS``) with a
    variance above ``ACTIVE_VARIANCE``."""
    return module_active_dimensions(est.module_, X)


def module_active_dimensions(module, X):
    """:func:`active_dimensions` for a trained network ``module`` (float64, on the CPU)."""
    step = max(1, -(-X.shape[0] // CHECK_ROWS))
    means = batched_no_grad(module.posterior_mean, X[::step], 4096)
    return int(np.sum(means.var(axis=0) > ACTIVE_VARIANCE))


def train_using_the_latent(est, X):
    """``(train_network(est, X), number of active latent dimensions)``. When
    ``est.batch_size`` is ``"auto"`` and the first training leaves no latent dimension
    active, it trains once more with mini-batches of ``COLLAPSE_BATCH_SIZE`` rows and
    returns that: on a few hundred rows in clusters a batch of up to 128 rows gives too
    few optimiser steps to leave the collapsed state, and smaller batches do
    (docs/results/collapse_refit.md)."""
    seed = fit_seed(est.random_state)  # one draw from a generator of the caller's
    trained = train_network(est, X, seed=seed)
    active = module_active_dimensions(trained[0]["module_"], X)
    if active == 0 and est.batch_size == "auto" \
            and trained[0]["batch_size_"] > COLLAPSE_BATCH_SIZE:
        if est.verbose:
            print("no latent dimension is used: training again with batch_size="
                  f"{COLLAPSE_BATCH_SIZE}", flush=True)
        trained = train_network(est, X, batch_size=COLLAPSE_BATCH_SIZE, seed=seed)
        active = module_active_dimensions(trained[0]["module_"], X)
    return trained, active


def warn_latent_unused(stacklevel=6):
    """The warning for a fit that leaves no latent dimension active (called by ``fit``'s
    ``_fit``, at ``stacklevel`` 6, and by ``partial_fit``, at 5: the user's call)."""
    warnings.warn(
        "DiVAE's encoder ignores its input: along every latent dimension the posterior "
        f"mean varies over the training rows with a variance of at most {ACTIVE_VARIANCE} "
        "(posterior collapse). Every row then gets nearly the same code, and the score is "
        "that of one Gaussian per feature around the data's mean: right for data with one "
        "mode, wrong for data in several clusters, where rows between them score as the "
        "most normal. If your data may have clusters, try batch_size=8 (fit with "
        "batch_size='auto' tries it by itself, an explicit batch_size or partial_fit does "
        "not) or a fixed decoder_std (such as 0.3 times a typical column's standard "
        "deviation, in the units DiVAE is given), and check the refit on rows you know: "
        "the warning going away is not enough (user guide, section 3).",
        PosteriorCollapseWarning,
        stacklevel=stacklevel,
    )

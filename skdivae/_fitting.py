"""How a DiVAE is trained: the standardisation, the density teacher and its targets, the
network, and the training loop, run in that order from the estimator's parameters.
:class:`~skdivae.DiVAE` validates the input before and sets the fitted attributes after."""

import time
from numbers import Integral

import numpy as np
import torch
from sklearn.utils import check_random_state

from ._build import build_network
from ._probes import make_probes
from ._torch_utils import resolve_device
from ._training import epoch_budget, fit_loop
from ._training_data import (
    standardizes,
    density_dim,
    fit_density,
    holdout_split,
    standardization,
    density_targets,
    training_arrays,
)


def fit_seed(random_state):
    """The seed a fit draws from ``random_state`` when it is not an int (``None``: numpy's
    global generator; a ``RandomState``: the caller's), once per ``fit`` call, so a refit
    within the same call (the collapse refit) reuses it; ``None`` for an int, which
    :func:`train_network` reads itself."""
    if isinstance(random_state, Integral) and not isinstance(random_state, bool):
        return None
    return int(check_random_state(random_state).randint(np.iinfo(np.int32).max))


def train_network(est, X, batch_size=None, seed=None):
    """Train the network of DiVAE ``est`` (read only: its parameters) on the validated
    ``X``; ``batch_size``, when given, replaces what ``est.batch_size`` resolves to.
    ``seed`` (from :func:`fit_seed`), when given, stands for ``est.random_state``: every
    draw of the fit then comes from it, and the caller's generator is not touched again.

    Returns
    -------
    fitted : dict
        ``module_`` (CPU, float64, eval mode, with the real standardisation),
        ``history_``, ``batch_size_``, ``device_`` and ``density`` (the fitted teacher).
    status : {"converged", "still_falling", "too_short", "at_auto_budget"}
        How training ended (:func:`~skdivae._training.fit_loop`); ``"at_auto_budget"``:
        still falling after at least the epochs ``max_iter="auto"`` would have run.
    max_iter : int
        The epoch budget the loop ran under.
    """
    n_samples, n_features = X.shape
    if seed is None:
        seed = fit_seed(est.random_state)
    if seed is None:  # an int random_state: its own generator, as before
        rng = check_random_state(est.random_state)
        seed = int(rng.randint(np.iinfo(np.int32).max))
    else:  # later draws (the early-stopping split) from the one seed drawn
        rng = np.random.RandomState(seed)
    device = resolve_device(est.device)

    center, scale = standardization(X, standardizes(est))
    X_std = (X - center) / scale
    tic = time.perf_counter()
    if est.verbose:
        print(f"fitting the density teacher on {n_samples} rows...", flush=True)
    density = fit_density(est.density, X_std, est.n_components, seed)
    if est.verbose:
        print(f"teacher {type(density).__name__} fitted in {time.perf_counter() - tic:.1f}s",
              flush=True)
    target, err = density_targets(density, X_std)

    if batch_size is None:  # else: the caller's, in place of est.batch_size
        batch_size = min(128, n_samples) if est.batch_size == "auto" else int(est.batch_size)
    batch_size = min(batch_size, n_samples)
    generator = torch.Generator().manual_seed(seed)
    # The network trains on data standardised here, in float64, with identity buffers:
    # float32 would lose a column's spread around a large mean. The buffers are set to
    # the real centre and scale (in float64) once training is over.
    train, valid = training_arrays(X_std, target, err, est.trim_fraction, device), None
    if est.early_stopping:
        train, valid = holdout_split(train, rng, est.validation_fraction, device)
    max_iter = epoch_budget(est.max_iter, train[0].shape[0], batch_size)
    if est.verbose:
        print(f"training for up to {max_iter} epochs", flush=True)

    noise_generator = torch.Generator(device=device).manual_seed(seed + 1)
    module = build_network(
        est,
        n_features=n_features,
        density_dim=density_dim(density, est.n_components),
        X_train=train[0],
        generator=generator,
        center=center,
        scale=scale,
        data_standardized=True,
    )
    module.set_standardization(np.zeros(n_features), np.ones(n_features))
    module = module.to(device)
    probes = make_probes(est, module, density, train[0].cpu().numpy(), seed, device)
    history, status = fit_loop(
        module,
        train,
        valid,
        batch_size=batch_size,
        max_iter=max_iter,
        learning_rate_init=est.learning_rate_init,
        beta=est.beta,
        alignment_weight=est.alignment_weight if module.aligner is not None else 0.0,
        beta_warmup=est.beta_warmup,
        alignment_warmup=est.alignment_warmup,
        tol=est.tol,
        n_iter_no_change=est.n_iter_no_change,
        generator=generator,
        verbose=est.verbose,
        beta_start=est.beta_start,
        noise_generator=noise_generator,
        probes=probes,
    )
    module = module.cpu().double().eval()
    module.set_standardization(center, scale)
    fitted = {"module_": module, "history_": history, "batch_size_": batch_size,
              "device_": device, "density": density}
    # A max_iter of the user's at least what "auto" would have chosen is judged as "auto" is
    # (docs/results/convergence.md): a loss still falling there is no reason to train on.
    if status == "still_falling" and max_iter >= epoch_budget("auto", train[0].shape[0], batch_size):
        status = "at_auto_budget"
    return fitted, status, max_iter

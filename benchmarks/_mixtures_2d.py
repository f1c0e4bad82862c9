"""Helpers of the 2-D rotated-mixture studies (``select_aligner_regime.py``,
``select_mixture_components_2d.py``, ``select_aligner_2d_mixture.py``): one measured fit,
and a resumable run of many. Not part of the package."""

import time
import warnings

from scipy.stats import pearsonr
from sklearn.metrics import roc_auc_score

from _report import run_cached

#: ``DirectAligner()`` as it resolved in a 1-2-D latent space before
#: ``select_calibration_2d.py`` made its ``"auto"`` options depend on the prior: the square
#: root of the mean penalty, no per-feature scaling, Huber threshold 1. Studies that ran
#: before that pin it, so that a rerun from an empty cache measures what their pages say.
DIRECT_2D_BEFORE_CALIBRATION = dict(per_feature=False, reduction="sqrt", delta=1.0)
from skdivae import DiVAE
from skdivae.datasets import RotatedGaussianMixture


def measure_fit(k, D, seed, n_train, n_val, **params):
    """Fit ``DiVAE(n_components=2, keep_density=True, random_state=seed, **params)`` on a
    rotated mixture of ``k`` Gaussians in ``D`` dimensions and return ``{"pearson",
    "pearson_rho", "time"}``: the Pearson correlation of the aligned log-prior at the
    posterior mean, and of the teacher rho, with the true 2-D log-density of the
    validation rows (``{"error", "time"}`` when the fit fails)."""
    data = RotatedGaussianMixture(k, D, random_state=seed)
    X_train, _ = data.sample(n_train, random_state=seed)
    X_val, _ = data.sample(n_val, random_state=seed + 100)
    est = DiVAE(n_components=2, keep_density=True, random_state=seed, **params)
    return pearsons_of_fit(est, X_train, X_val, data.log_density_2d)


def pearsons_of_fit(est, X_train, X_val, true_log_density):
    """Fit ``est`` (a DiVAE with ``keep_density=True``) on ``X_train`` and return
    ``{"pearson", "pearson_rho", "time"}``: the Pearson correlation of its aligned
    log-prior, and of its teacher rho, with ``true_log_density(X_val)`` (``{"error",
    "time"}`` when the fit fails). One torch thread, warnings silenced."""
    import torch

    torch.set_num_threads(1)
    rec = {}
    tic = time.perf_counter()
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            est.fit(X_train)
        truth = true_log_density(X_val)
        center, scale = est.module_.center.numpy(), est.module_.scale.numpy()
        rho = est.density_.score_samples((X_val - center) / scale)
        rec["pearson"] = float(pearsonr(truth, est._apply("aligned_log_prior", X_val))[0])
        rec["pearson_rho"] = float(pearsonr(truth, rho)[0])
    except Exception as exc:  # one failure must not stop the study
        rec["error"] = f"{type(exc).__name__}: {exc}"
    rec["time"] = time.perf_counter() - tic
    return rec


def detection_fit(data, seed, label, **params):
    """ROC AUC (anomaly_score="elbo") of ``DiVAE(n_components=2, random_state=seed,
    **params)`` on one ADBench set with the benchmark's split and scaling: the detection
    checks the 2-D studies make after an adoption. ``label`` names the record's variant."""
    import torch

    from _adbench import split_and_scale

    torch.set_num_threads(1)
    rec = {"part": "adbench", "dataset": data["name"], **label, "seed": seed}
    tic = time.perf_counter()
    try:
        X_train, X_test, y_test = split_and_scale(data, seed)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            est = DiVAE(n_components=2, random_state=seed, **params).fit(X_train)
        rec["auc"] = float(roc_auc_score(y_test, -est.score_samples(X_test)))
    except Exception as exc:  # one failure must not stop the check
        rec["error"] = f"{type(exc).__name__}: {exc}"
    rec["time"] = time.perf_counter() - tic
    return rec


def _labelled_fit(label, fit_args, fit=measure_fit):
    return {**label, **fit(**fit_args)}


def run_fits(records, tasks, cache, n_jobs, fit=measure_fit):
    """Run ``tasks``, ``(label, fit_args)`` pairs (the record's identifying fields, and the
    keyword arguments of ``fit``, :func:`measure_fit` unless given), in parallel; append each
    record to ``records`` and to ``cache`` (JSON lines) as it finishes, so a cut-off run
    resumes."""
    print(f"{len(records)} fits cached", flush=True)
    return run_cached(records, [(*task, fit) for task in tasks], _labelled_fit, cache, n_jobs,
                      lambda r: " | ".join(f"{k}={v}" for k, v in r.items()
                                           if k not in ("pearson_rho", "time")))


#: Two small setups (k, D, standardize, epochs) and their rows, for the checks' --fast runs.
FAST_SETUPS, FAST_ROWS = [(3, 6, True, 2), (3, 5, False, 2)], (300, 200)


def check_arguments(description, seeds, argv=None):
    """The command line of the mixture checks (``--cache``, ``--out``, ``--seeds``,
    ``--n-jobs``, ``--fast``): returns the parsed arguments, the setups and the training
    and validation rows (the small ones with ``--fast``)."""
    import argparse
    from pathlib import Path

    from select_mixture_components_2d import N_TRAIN, N_VAL, SETUPS

    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--cache", type=Path)
    parser.add_argument("--out", type=Path)
    parser.add_argument("--seeds", type=int, nargs="+", default=seeds)
    parser.add_argument("--n-jobs", type=int, default=2)
    parser.add_argument("--fast", action="store_true", help="two small setups (tests)")
    args = parser.parse_args(argv)
    if args.fast:
        return args, FAST_SETUPS, *FAST_ROWS
    return args, SETUPS, N_TRAIN, N_VAL

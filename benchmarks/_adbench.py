"""The ADBench protocol shared by the tabular benchmark scripts.

One place defines how a data set is read, capped, split and scaled, how a
detector is timed and scored, and how results are ranked, so that the
benchmark (``bench_adbench.py``) and the study that chose DiVAE's defaults
(``select_defaults.py``) measure exactly the same thing.

Protocol, for every data set and seed: at most ``max_rows`` rows (a stratified
subsample drawn once, with seed 0, so every seed sees the same rows), a
stratified 70/30 split with ``random_state=seed``, a ``StandardScaler``
fitted on the training part, an unsupervised fit on the training rows
(anomalies included, labels unused), and ROC AUC and average precision on
the test part with anomalies (``y = 1``) as the positive class.
"""

import argparse
import time
import traceback
import warnings
from pathlib import Path

import numpy as np
from sklearn.datasets import make_blobs
from sklearn.metrics import average_precision_score, roc_auc_score
from sklearn.model_selection import train_test_split
from sklearn.preprocessing import StandardScaler

TEST_SIZE = 0.3


def list_datasets(data_dir):
    """Names (file stems) of the ADBench ``.npz`` files in ``data_dir``, sorted by their number."""
    data_dir = Path(data_dir)
    if not data_dir.is_dir():
        raise SystemExit(f"error: data directory {data_dir} not found (is --data-dir right?)")
    names = [p.stem for p in data_dir.glob("*.npz")]
    if not names:
        raise SystemExit(f"error: no ADBench .npz files in {data_dir}")

    def number(name):
        head = name.split("_", 1)[0]
        return (int(head), name) if head.isdigit() else (10**9, name)

    return sorted(names, key=number)


def load_dataset(data_dir, name, max_rows):
    """``{"name", "X", "y", "n_rows_file"}`` for one file, stratified-subsampled to ``max_rows``."""
    path = Path(data_dir) / f"{name}.npz"
    if not path.is_file():
        raise SystemExit(f"error: {path} not found (is --data-dir right?)")
    with np.load(path, allow_pickle=False) as data:
        X = np.asarray(data["X"], dtype=np.float64)
        y = np.asarray(data["y"]).astype(int).ravel()
    n_rows = len(X)
    if max_rows and n_rows > max_rows:
        X, _, y, _ = train_test_split(X, y, train_size=max_rows, stratify=y, random_state=0)
    return {"name": name, "X": X, "y": y, "n_rows_file": n_rows}


def synthetic_dataset(name, seed, n_inliers=300, n_outliers=30, n_features=6):
    """Gaussian blobs plus broad Gaussian outliers that partly overlap them: the stand-in
    data set of ``--fast`` runs (hard enough that detectors do not all score 1)."""
    X_in, _ = make_blobs(
        n_samples=n_inliers, n_features=n_features, centers=3, cluster_std=2.0,
        random_state=seed,
    )
    rng = np.random.default_rng(seed)
    X_out = rng.normal(X_in.mean(axis=0), 1.5 * X_in.std(axis=0), size=(n_outliers, n_features))
    X = np.vstack([X_in, X_out])
    y = np.r_[np.zeros(n_inliers, dtype=int), np.ones(n_outliers, dtype=int)]
    return {"name": name, "X": X, "y": y, "n_rows_file": len(X)}


def study_parser(description, default_seeds,
                 seeds_help="seeds to fit (none: only write the page from --cache)"):
    """The command line the ADBench studies share: ``--data-dir``, ``--cache``, ``--out``,
    ``--seeds``, ``--max-rows``, ``--n-jobs`` and ``--fast`` (a study adds its own)."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--data-dir", default=None)
    parser.add_argument("--cache", type=Path)
    parser.add_argument("--out", type=Path)
    parser.add_argument("--seeds", type=int, nargs="*", default=default_seeds, help=seeds_help)
    parser.add_argument("--max-rows", type=int, default=10000)
    parser.add_argument("--n-jobs", type=int, default=2)
    parser.add_argument("--fast", action="store_true", help="two small synthetic sets (tests)")
    return parser


def study_datasets(parser, args, *seed_lists):
    """``(datasets, max_iter)`` for a study's parsed ``args``: with ``--fast``, two small
    synthetic sets fitted for 3 epochs on seed 10 only (``args.seeds`` and every list in
    ``seed_lists`` are set to ``[10]`` in place); else every set of ``--data-dir`` (at most
    ``--max-rows`` rows each) with ``max_iter="auto"``."""
    if args.fast:
        for seeds in seed_lists:
            seeds[:] = [10]
        args.seeds = [10]
        return [synthetic_dataset(f"synthetic_{i}", i) for i in range(2)], 3
    if args.data_dir is None:
        parser.error("--data-dir is required (or --fast)")
    names = list_datasets(args.data_dir)
    return [load_dataset(args.data_dir, n, args.max_rows) for n in names], "auto"


def split_and_scale(data, seed):
    """Stratified 70/30 split and a StandardScaler fitted on the training part."""
    X_train, X_test, _, y_test = train_test_split(
        data["X"], data["y"], test_size=TEST_SIZE, stratify=data["y"], random_state=seed
    )
    scaler = StandardScaler().fit(X_train)
    return scaler.transform(X_train), scaler.transform(X_test), y_test


def evaluate(make_detector, normality, data, seed):
    """Fit one detector on one split and score it; a failure is returned, not raised.

    ``make_detector(seed)`` builds the unfitted detector and ``normality(est, X)``
    returns scores where higher means more normal.
    """
    import torch

    torch.set_num_threads(1)  # small networks: one thread per fit is fastest
    record = {"dataset": data["name"], "seed": seed}
    try:
        X_train, X_test, y_test = split_and_scale(data, seed)
        est = make_detector(seed)
        tic = time.perf_counter()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            est.fit(X_train)
            record["fit_time"] = time.perf_counter() - tic
            tic = time.perf_counter()
            scores = np.asarray(normality(est, X_test), dtype=np.float64)
        record["score_time"] = time.perf_counter() - tic
        if not np.all(np.isfinite(scores)):
            raise FloatingPointError(f"{np.sum(~np.isfinite(scores))} non-finite scores")
        record["auc"] = float(roc_auc_score(y_test, -scores))
        record["ap"] = float(average_precision_score(y_test, -scores))
    except Exception as exc:  # one failure must not stop a benchmark
        last = traceback.extract_tb(exc.__traceback__)[-1]
        record["error"] = f"{type(exc).__name__}: {exc} ({Path(last.filename).name}:{last.lineno})"
    return record


def mean_by(records, key, metric):
    """``{key value: mean of metric}`` over the records that have the metric."""
    groups = {}
    for r in records:
        if metric in r:
            groups.setdefault(r[key], []).append(r[metric])
    return {k: float(np.mean(v)) for k, v in groups.items()}


def auc_table(records, detectors, datasets, metric="auc"):
    """Array ``(n_datasets, n_detectors)`` of the metric averaged over seeds (NaN if missing)."""
    table = np.full((len(datasets), len(detectors)), np.nan)
    for j, det in enumerate(detectors):
        for i, name in enumerate(datasets):
            vals = [
                r[metric] for r in records
                if r["detector"] == det and r["dataset"] == name and metric in r
            ]
            if vals:
                table[i, j] = np.mean(vals)
    return table


def average_ranks(table):
    """Mean rank of each column over the rows (1 = best = highest; ties share the mean
    rank). A column with no value at all (a detector that failed everywhere) gets NaN and
    is left out of the ranking; then rows with a missing value are left out for every
    column."""
    from scipy.stats import rankdata

    out = np.full(table.shape[1], np.nan)
    ranked = ~np.isnan(table).all(axis=0)
    complete = ~np.isnan(table[:, ranked]).any(axis=1)
    if not complete.any():
        return out
    ranks = np.vstack([rankdata(-row) for row in table[complete][:, ranked]])
    out[ranked] = ranks.mean(axis=0)
    return out

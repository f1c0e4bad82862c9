"""The user guide's worked numbers, measured by a script
=======================================================

Sections 3 and 4 of ``docs/user_guide.md`` quote what a user sees with the recipes they
give, on scikit-learn's bundled data (parts A and B) and on synthetic data (C and D). This
script measures those numbers, with every setup written down, on seeds 0 to 3 (A and B) or
0 to 2 (C and D), so that the guide can cite a page instead of a walk-through:

A. **The OOD recipe on digits.** Trained on digits 0 to 7 only (raw pixel values 0 to 16,
   no scaler unless said): 60 % of their rows train, 20 % are held-out normal rows (where
   the 1 % quantile threshold is set), 20 % are scored beside every 8 and 9 (the novel
   rows). Per detector: ROC AUC on the scored rows; the share of novel rows below the 1 %
   quantile of the held-out normal rows' scores; the share of held-out normal rows that
   ``predict`` flags at ``contamination=0.1``.
B. **How many new normal rows ``contamination`` flags.** ``DiVAE()`` with its defaults on
   breast cancer (benign rows normal), wine (classes 0 and 1 normal) and digits (0 to 7
   normal): 60 % of the normal rows plus anomalies making up 5 % of the training rows
   train; the share of the other normal rows (held out) that ``predict`` flags at
   ``contamination=0.1``.
C. **Two clusters, anomalies between them** (a collapse case). 300 rows of two Gaussian
   clusters in 2-D (centres -4 and 4 on the first axis, spread 0.7) train; 200 new cluster
   rows and 30 rows drawn uniformly near the origin (between the clusters) are scored.
D. **A table with categorical columns** (synthetic customers): four numeric columns (age,
   income, spend, visits; spend follows income and the plan), a plan (3 levels, mostly set
   by income), a region (4 levels) and a store (10 common levels and 30 rare ones, 0.7 %
   of the rows each). A ``ColumnTransformer`` scales the numeric columns and one-hot
   encodes the others (dense 0/1 columns). 1 000 clean rows train, 300 more are held-out
   normal rows, and 500 are scored, 50 of them anomalies (half with a spend far from what
   income and plan give, half a premium plan with a low income).

Nothing here chooses a default. A run takes a few minutes on one CPU.

    python benchmarks/check_guide_numbers.py --out docs/results

Writes ``guide_numbers.md`` into ``--out`` (default: print). ``--fast`` fits for three
epochs on seed 0 only, for the tests.
"""

import argparse
import time
import warnings
from pathlib import Path

import numpy as np
from sklearn.base import BaseEstimator
from sklearn.datasets import load_breast_cancer, load_digits, load_wine, make_blobs
from sklearn.ensemble import IsolationForest
from sklearn.metrics import roc_auc_score
from sklearn.model_selection import train_test_split
from sklearn.neighbors import LocalOutlierFactor, NearestNeighbors
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from _report import provenance, write_page
from select_batch_size import rule_batch

OOD = "OOD settings: DiVAE(trim_fraction=0, batch_size=min(128, max(16, n // 32)))"

#: The user guide's OOD batch size: select_batch_size.py's candidate rule.
ood_batch = rule_batch


def near_constant_columns(X, share=0.95):
    """Columns whose most frequent value fills at least ``share`` of the rows."""
    out = []
    for j in range(X.shape[1]):
        _, counts = np.unique(X[:, j], return_counts=True)
        out.append(counts.max() >= share * len(X))
    return np.array(out)


def digits_detectors(seed, n_train, max_iter):
    from skdivae import DiVAE

    ood = dict(trim_fraction=0, batch_size=ood_batch(n_train), random_state=seed,
               max_iter=max_iter)
    return {
        "DiVAE() (defaults)": (DiVAE(random_state=seed, max_iter=max_iter), False),
        OOD: (DiVAE(**ood), False),
        "OOD settings, decoder_std=0.5": (DiVAE(decoder_std=0.5, **ood), False),
        "StandardScaler, then OOD settings with decoder_std=0.5": (
            make_pipeline(StandardScaler(), DiVAE(decoder_std=0.5, **ood)), False),
        "OOD settings, near-constant columns dropped (mode fills >= 95 % of the rows)": (
            DiVAE(**ood), True),
        "IsolationForest(contamination=0.1)": (
            IsolationForest(contamination=0.1, random_state=seed), False),
        "LOF(novelty, contamination=0.1)": (
            LocalOutlierFactor(novelty=True, contamination=0.1), False),
    }


def part_a(seeds, max_iter):
    """``{detector: [(ROC AUC, novel caught at 1 %, held-out normal flagged), per seed]}``."""
    X, digit = load_digits(return_X_y=True)
    normal, novel = X[digit < 8], X[digit >= 8]
    rows = {}
    for seed in seeds:
        X_train, rest = train_test_split(normal, test_size=0.4, random_state=seed)
        X_held, X_test = train_test_split(rest, test_size=0.5, random_state=seed)
        scored = np.vstack([X_test, novel])
        labels = np.r_[np.zeros(len(X_test)), np.ones(len(novel))]
        keep = ~near_constant_columns(X_train)
        for name, (det, drop) in digits_detectors(seed, len(X_train), max_iter).items():
            cols = keep if drop else slice(None)
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                det.fit(X_train[:, cols])
                threshold = np.quantile(det.score_samples(X_held[:, cols]), 0.01)
                rows.setdefault(name, []).append((
                    roc_auc_score(labels, -det.score_samples(scored[:, cols])),
                    float(np.mean(det.score_samples(novel[:, cols]) < threshold)),
                    float(np.mean(det.predict(X_held[:, cols]) == -1)),
                ))
    return rows


def bundled_sets():
    """name -> (X, is_normal) for part B."""
    cancer, wine = load_breast_cancer(), load_wine()
    X_digits, digit = load_digits(return_X_y=True)
    return {
        "breast cancer (benign normal)": (cancer.data, cancer.target == 1),
        "wine (classes 0 and 1 normal)": (wine.data, wine.target < 2),
        "digits (0 to 7 normal)": (X_digits, digit < 8),
    }


def part_b(seeds, max_iter):
    """``{data set: [held-out normal rows flagged, per seed]}``."""
    from skdivae import DiVAE

    out = {}
    for name, (X, is_normal) in bundled_sets().items():
        for seed in seeds:
            rng = np.random.default_rng(seed)
            train, held = train_test_split(np.flatnonzero(is_normal), test_size=0.4,
                                           random_state=seed)
            n_anomalies = int(round(len(train) * 0.05 / 0.95))
            anomalies = rng.choice(np.flatnonzero(~is_normal), n_anomalies, replace=False)
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                det = DiVAE(random_state=seed, max_iter=max_iter).fit(
                    X[np.r_[train, anomalies]])
                out.setdefault(name, []).append(float(np.mean(det.predict(X[held]) == -1)))
    return out


def part_c(seeds, max_iter):
    """``{detector: [(ROC AUC, collapse warned, batch size used), per seed]}``."""
    from skdivae import DiVAE, PosteriorCollapseWarning

    centres = [[-4, 0], [4, 0]]
    out = {}
    for seed in seeds:
        rng = np.random.default_rng(seed)
        X, _ = make_blobs(300, n_features=2, centers=centres, cluster_std=0.7, random_state=seed)
        new, _ = make_blobs(200, n_features=2, centers=centres, cluster_std=0.7,
                            random_state=seed + 10)
        scored = np.vstack([new, rng.uniform(-1, 1, size=(30, 2)) * [1.5, 1]])
        labels = np.r_[np.zeros(200), np.ones(30)]
        spread = 0.3 * X.std(axis=0).mean()
        ood = dict(trim_fraction=0, batch_size=ood_batch(len(X)))
        detectors = {
            "DiVAE() (batch size 'auto', refitted on collapse)": DiVAE(),
            OOD: DiVAE(**ood),
            "OOD settings, batch_size=8": DiVAE(**{**ood, "batch_size": 8}),
            "OOD settings, decoder_std=0.3 x the columns' mean spread": DiVAE(
                decoder_std=spread, **ood),
            "OOD settings, learning_rate_init=1e-2": DiVAE(learning_rate_init=1e-2, **ood),
        }
        for name, det in detectors.items():
            det.set_params(random_state=seed, max_iter=max_iter)
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always")
                det.fit(X)
            collapsed = any(issubclass(w.category, PosteriorCollapseWarning) for w in caught)
            out.setdefault(name, []).append(
                (roc_auc_score(labels, -det.score_samples(scored)), collapsed, det.batch_size_))
        lof = LocalOutlierFactor(novelty=True).fit(X)
        out.setdefault("LOF(novelty)", []).append(
            (roc_auc_score(labels, -lof.score_samples(scored)), None, None))
    return out


class KNN5(BaseEstimator):
    """PyOD KNN's default as a normality score: minus the distance to the 5th neighbour."""

    def fit(self, X, y=None):
        self.nn_ = NearestNeighbors(n_neighbors=5).fit(X)
        return self

    def score_samples(self, X):
        return -self.nn_.kneighbors(X)[0][:, -1]


def customers(n, rng, n_anomalies=0):
    """Part D's synthetic table (a pandas DataFrame) and its labels (1 = anomaly)."""
    import pandas as pd

    age = np.clip(rng.normal(40, 10, n), 18, 80)
    income = 20_000 + 900 * age + rng.normal(0, 8_000, n)
    plan = np.where(income > 60_000, "premium", np.where(income > 45_000, "standard", "basic"))
    switched = rng.random(n) < 0.05
    plan[switched] = rng.choice(["basic", "standard", "premium"], switched.sum())
    spend = 0.02 * income + np.select([plan == "basic", plan == "standard"], [0, 200], 600) \
        + rng.normal(0, 80, n)
    region = rng.choice(["north", "south", "east", "west"], n, p=[0.4, 0.3, 0.2, 0.1])
    visits = rng.poisson(np.where(region == "north", 5, 2)).astype(float)
    shares = np.r_[np.full(10, 0.08), np.full(30, 0.2 / 30)]
    store = rng.choice([f"store_{i}" for i in range(40)], n, p=shares)
    frame = pd.DataFrame(dict(age=age, income=income, spend=spend, visits=visits, plan=plan,
                              region=region, store=store))
    y = np.zeros(n, dtype=int)
    rows = rng.choice(n, n_anomalies, replace=False)
    off, premium = rows[: n_anomalies // 2], rows[n_anomalies // 2:]
    frame.loc[off, "spend"] += rng.choice([-1, 1], len(off)) * rng.uniform(500, 900, len(off))
    frame.loc[premium, "plan"] = "premium"
    frame.loc[premium, "income"] = rng.uniform(25_000, 32_000, len(premium))
    frame.loc[premium, "spend"] = 0.02 * frame.loc[premium, "income"] \
        + rng.normal(0, 80, len(premium))
    y[rows] = 1
    return frame, y


def part_d(seeds, max_iter):
    """``{detector: [(ROC AUC, anomalies caught at the held-out 1 % quantile), per seed]}``;
    every detector behind the same scaling and one-hot encoding."""
    from sklearn.compose import ColumnTransformer
    from sklearn.preprocessing import OneHotEncoder

    from skdivae import DiVAE

    numeric, categorical = ["age", "income", "spend", "visits"], ["plan", "region", "store"]

    def encoder(columns=categorical):
        return ColumnTransformer([
            ("numeric", StandardScaler(), numeric),
            ("categorical", OneHotEncoder(handle_unknown="ignore", sparse_output=False),
             columns)])

    out = {}
    for seed in seeds:
        rng = np.random.default_rng(seed)
        train, _ = customers(1000, rng)
        held, _ = customers(300, rng)
        scored, labels = customers(500, rng, n_anomalies=50)
        ood = dict(trim_fraction=0, batch_size=ood_batch(len(train)), random_state=seed,
                   max_iter=max_iter)
        detectors = {
            OOD: (DiVAE(**ood), categorical),
            OOD + ", without the store column": (DiVAE(**ood), ["plan", "region"]),
            "OOD settings, decoder_std=0.1": (DiVAE(decoder_std=0.1, **ood), categorical),
            "OOD settings, decoder_std=0.3": (DiVAE(decoder_std=0.3, **ood), categorical),
            "kNN distance, k=5 (PyOD KNN's default)": (KNN5(), categorical),
            "IsolationForest": (IsolationForest(random_state=seed), categorical),
        }
        for name, (det, columns) in detectors.items():
            model = make_pipeline(encoder(columns), det)
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                model.fit(train)
                threshold = np.quantile(model.score_samples(held), 0.01)
                scores = model.score_samples(scored)
            out.setdefault(name, []).append((roc_auc_score(labels, -scores),
                                             float(np.mean(scores[labels == 1] < threshold))))
    return out


def span(values, digits=2):
    """``"lo to hi"`` (or the one value) of ``values``."""
    lo, hi = min(values), max(values)
    return f"{lo:.{digits}f}" if round(lo, digits) == round(hi, digits) \
        else f"{lo:.{digits}f} to {hi:.{digits}f}"


def report(a, b, c, d, seeds, wall):
    out = ["# The user guide's worked numbers", "", provenance("check_guide_numbers.py", wall), "",
           "Measured with the setups of this script's docstring "
           "(`benchmarks/check_guide_numbers.py`): parts A and B on scikit-learn's bundled "
           f"data, seeds {', '.join(map(str, seeds))}; parts C and D on synthetic data, seeds "
           f"{', '.join(map(str, seeds[:3]))}. Each cell gives the range over the seeds. "
           "Nothing here chooses a default.", "",
           "## A. The OOD recipe on digits (trained on 0 to 7, novel: 8 and 9)", "",
           "| detector | ROC AUC | novel rows caught at the held-out 1 % quantile | "
           "held-out normal rows flagged at contamination=0.1 |", "|---|---|---|---|"]
    for name, rows in a.items():
        auc, caught, flagged = zip(*rows)
        out.append(f"| {name} | {span(auc, 3)} | {span(caught)} | {span(flagged)} |")
    out += ["", "## B. Held-out normal rows flagged by DiVAE() at contamination=0.1", "",
            "Anomalies make up 5 % of the training rows.", "",
            "| data set | share flagged |", "|---|---|"]
    out += [f"| {name} | {span(v)} |" for name, v in b.items()]
    out += ["", "## C. Two clusters, anomalies between them", "",
            "| detector | ROC AUC | fits that warned of collapse | batch size used |",
            "|---|---|---|---|"]
    for name, rows in c.items():
        auc, collapsed, batch = zip(*rows)
        warned = "" if collapsed[0] is None else f"{sum(collapsed)} of {len(collapsed)}"
        sizes = "" if batch[0] is None else ", ".join(sorted({str(s) for s in batch}))
        out.append(f"| {name} | {span(auc, 3)} | {warned} | {sizes} |")
    out += ["", "## D. A table with categorical columns (one-hot, 30 rare store levels)", "",
            "| detector | ROC AUC | anomalies caught at the held-out 1 % quantile |",
            "|---|---|---|"]
    for name, rows in d.items():
        auc, caught = zip(*rows)
        out.append(f"| {name} | {span(auc, 3)} | {span(caught)} |")
    return "\n".join(out) + "\n"


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path)
    parser.add_argument("--fast", action="store_true", help="3 epochs, seed 0 (tests)")
    args = parser.parse_args(argv)
    import torch

    torch.set_num_threads(1)
    tic = time.perf_counter()
    seeds, max_iter = ([0], 3) if args.fast else ([0, 1, 2, 3], "auto")
    a, b = part_a(seeds, max_iter), part_b(seeds, max_iter)
    c = part_c(seeds[:3], max_iter)
    d = part_d(seeds[:3], max_iter)
    write_page(args.out, "guide_numbers.md",
               report(a, b, c, d, seeds, time.perf_counter() - tic))


if __name__ == "__main__":
    main()

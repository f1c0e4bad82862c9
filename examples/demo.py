"""DiVAE as an anomaly detector on built-in data
==============================================

The first thing to run (``make demo``). Benign tumours of scikit-learn's
breast-cancer data are the normal class; 20 malignant ones are injected as
anomalies. ``DiVAE()`` with its defaults is fitted without labels, next to
the same VAE without alignment and an IsolationForest; the script prints
each detector's ROC AUC (``skdivae.model_selection.anomaly_roc_auc``), how
many injected anomalies ``predict`` flags, and which features drive the
score of the most anomalous row (``DiVAE.feature_residuals``).

It saves one figure: the latent means (projected on their two principal
axes) with the injected anomalies marked, and the distribution of scores of
normal rows and anomalies with the ``predict`` threshold. The figure goes to
``--out`` (default ``demo_output/``, which git ignores), never into ``docs/``
unless asked.
"""

import argparse
import time
import warnings
from pathlib import Path

import numpy as np
from sklearn.datasets import load_breast_cancer
from sklearn.decomposition import PCA
from sklearn.ensemble import IsolationForest
from sklearn.exceptions import ConvergenceWarning
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from skdivae import DiVAE
from skdivae.model_selection import anomaly_roc_auc


def injected_anomalies(n_anomalies=20, seed=0):
    """Benign rows plus ``n_anomalies`` malignant rows; y = 1 for anomalies."""
    data = load_breast_cancer()
    rng = np.random.default_rng(seed)
    benign, malignant = data.data[data.target == 1], data.data[data.target == 0]
    picked = malignant[rng.choice(len(malignant), n_anomalies, replace=False)]
    X = np.vstack([benign, picked])
    y = np.r_[np.zeros(len(benign)), np.ones(n_anomalies)]
    return X, y, data.feature_names


def plot(model, X, y, path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    divae = model[-1]
    Z = divae.transform(model[:-1].transform(X))
    Z2 = PCA(2).fit(Z[y == 0]).transform(Z)
    scores = model.score_samples(X)
    anomaly = y == 1
    fig, (left, right) = plt.subplots(1, 2, figsize=(12, 5))
    pts = left.scatter(Z2[~anomaly, 0], Z2[~anomaly, 1], c=scores[~anomaly], s=12, cmap="viridis",
                       vmin=np.percentile(scores[~anomaly], 2), label="normal (colour = score)")
    left.scatter(Z2[anomaly, 0], Z2[anomaly, 1], marker="x", c="red", s=60, linewidths=2,
                 label="injected anomaly")
    fig.colorbar(pts, ax=left, label="score_samples (higher = more normal)")
    left.set(xlabel="latent PC 1", ylabel="latent PC 2",
             title="DiVAE() latent means (2 principal axes of 8)")
    left.legend(loc="best", fontsize=8)
    bins = np.linspace(np.percentile(scores, 0.5), scores.max(), 40)
    right.hist(scores[~anomaly], bins=bins, alpha=0.6, label="normal", density=True)
    right.hist(np.clip(scores[anomaly], bins[0], None), bins=bins, alpha=0.8, color="red",
               label="injected anomalies (clipped at left edge)", density=True)
    right.axvline(divae.offset_, color="black", ls="--",
                  label=f"predict threshold (contamination={divae.contamination})")
    right.set(xlabel="score_samples", ylabel="density", title="Scores: anomalies fall left")
    right.legend(loc="upper left", fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--fast", action="store_true", help="few epochs (used by the tests)")
    parser.add_argument("--out", type=Path, default=Path("demo_output"), help="folder for the figure")
    args = parser.parse_args(argv)
    epochs = {"max_iter": 5} if args.fast else {}

    X, y, names = injected_anomalies()
    print(f"data: {len(X)} rows x {X.shape[1]} features, {int(y.sum())} injected anomalies\n")
    detectors = {
        "DiVAE() (the defaults)": DiVAE(random_state=0, **epochs),
        "the same VAE without alignment": DiVAE(aligner=None, random_state=0, **epochs),
        "IsolationForest": IsolationForest(random_state=0),
    }
    fitted = {}
    for name, detector in detectors.items():
        model = make_pipeline(StandardScaler(), detector)
        tic = time.perf_counter()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            model.fit(X)
        flagged = int(np.sum(model.predict(X)[y == 1] == -1))
        print(f"{name:34s} ROC AUC {anomaly_roc_auc(model, X, y):.3f}   flags {flagged:2d} of "
              f"{int(y.sum())} anomalies   fit {time.perf_counter() - tic:5.1f}s")
        fitted[name] = model

    model = fitted["DiVAE() (the defaults)"]
    worst = int(np.argmin(model.score_samples(X)))
    res = model[-1].feature_residuals(model[:-1].transform(X[worst : worst + 1]))[0]
    top = np.argsort(-np.abs(res))[:3]
    print(f"\nmost anomalous row: {worst} ({'an injected anomaly' if y[worst] else 'a normal row'}); "
          "features driving its score: "
          + ", ".join(f"{names[j]} (residual {res[j]:+.1f} sd)" for j in top))

    args.out.mkdir(parents=True, exist_ok=True)
    path = args.out / "demo.png"
    plot(model, X, y, path)
    print(f"figure written to {path}")


if __name__ == "__main__":
    main()

"""Do the candidate scores invert where the ELBO separates? (issue 27)
===================================================================

A score that reads the log-prior must not lose what the ELBO already does well.
Three in-versus-out tasks, each scored by every candidate of
``_score_candidates.py`` from one ``DiVAE()`` fit (defaults, ``keep_density=True``):

* **digits**: sklearn's bundled digits; train on 70 % of the 0-4 images, score the
  other 0-4 images (normal) against every 5-9 image;
* **synthetic OOD** (the paper's task): train on a rotated mixture with k=4, D=50
  (5 000 rows), score 2 000 fresh rows of it against 2 000 rows of a k=8 mixture
  with another rotation;
* **MNIST vs Fashion-MNIST** (needs ``--mnist-dir`` and ``--fashion-dir``): train on
  10 000 MNIST training images, score 2 000 MNIST test images against 2 000
  Fashion-MNIST test images.

Targets: where the ELBO gives ROC AUC >= 0.99, a candidate must give >= 0.95; on
digits, at most 0.01 below the ELBO. Seeds 0, 1, 2; nothing is chosen here.

    python benchmarks/check_score_inversion.py --mnist-dir ../shared/data/mnist \\
        --fashion-dir ../shared/data/fashion_mnist --out docs/results
"""

import argparse
import time
import warnings
from pathlib import Path

import numpy as np
from sklearn.datasets import load_digits
from sklearn.metrics import roc_auc_score
from sklearn.model_selection import train_test_split

from _report import provenance, write_page
from _score_candidates import candidate_scores, label
from skdivae import DiVAE
from skdivae.datasets import RotatedGaussianMixture, load_mnist

SEEDS = (0, 1, 2)


def digits_task(seed, fast=False):
    X, y = load_digits(return_X_y=True)
    low = y < 5
    X_fit, X_in = train_test_split(X[low], test_size=0.3, random_state=seed)
    return X_fit, X_in, X[~low]


def synthetic_task(seed, fast=False):
    n = 500 if fast else 5000
    data = RotatedGaussianMixture(4, 50, random_state=seed)
    X_fit, _ = data.sample(n, random_state=seed)
    X_in, _ = data.sample(n // 2 if fast else 2000, random_state=seed + 100)
    X_out, _ = RotatedGaussianMixture(8, 50, random_state=1000 + seed).sample(len(X_in), random_state=seed + 200)
    return X_fit, X_in, X_out


def mnist_task(mnist_dir, fashion_dir):
    def task(seed, fast=False):
        rng = np.random.default_rng(seed)
        X_train, _ = load_mnist(mnist_dir, "train")
        X_test, _ = load_mnist(mnist_dir, "test")
        X_fashion, _ = load_mnist(fashion_dir, "test")
        n_fit, n_score = (1000, 300) if fast else (10_000, 2000)
        return (X_train[rng.choice(len(X_train), n_fit, replace=False)],
                X_test[rng.choice(len(X_test), n_score, replace=False)],
                X_fashion[rng.choice(len(X_fashion), n_score, replace=False)])
    return task


def run(task, seed, fast):
    import torch

    torch.set_num_threads(1)
    X_fit, X_in, X_out = task(seed, fast)
    est = DiVAE(random_state=seed, keep_density=True, max_iter=5 if fast else "auto")
    tic = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        est.fit(X_fit)
    X_score = np.vstack([X_in, X_out])
    anomaly = np.r_[np.zeros(len(X_in)), np.ones(len(X_out))]
    scores, _ = candidate_scores(est, X_fit, X_score, seed)
    aucs = {k: float(roc_auc_score(anomaly, -v)) for k, v in scores.items()}
    return aucs, time.perf_counter() - tic


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mnist-dir", type=Path)
    parser.add_argument("--fashion-dir", type=Path)
    parser.add_argument("--out", type=Path, help="folder for score_inversion.md (default: print)")
    parser.add_argument("--fast", action="store_true")
    args = parser.parse_args(argv)
    tic = time.perf_counter()
    tasks = {"digits (0-4 vs 5-9)": digits_task, "synthetic OOD (k=4 vs k=8, D=50)": synthetic_task}
    if args.mnist_dir and args.fashion_dir:
        tasks["MNIST vs Fashion-MNIST"] = mnist_task(args.mnist_dir, args.fashion_dir)
    seeds = SEEDS[:1] if args.fast else SEEDS
    results, times = {}, {}
    for name, task in tasks.items():
        runs = [run(task, s, args.fast) for s in seeds]
        results[name] = {k: float(np.mean([r[0][k] for r in runs])) for k in runs[0][0]}
        times[name] = sum(r[1] for r in runs)
        print(name, {k: round(v, 3) for k, v in results[name].items()}, flush=True)
    names = list(results)
    lines = ["# Does a score that reads the log-prior invert where the ELBO separates?", "",
             provenance("check_score_inversion.py", time.perf_counter() - tic), "",
             "Mean ROC AUC over seeds " + ", ".join(map(str, seeds)) + " of one `DiVAE()` fit per "
             "task and seed (out-of-distribution rows as the positive class). Targets: >= 0.95 "
             "where the ELBO gives >= 0.99; on digits, at most 0.01 below the ELBO.", "",
             "| candidate | " + " | ".join(names) + " | meets both targets |",
             "|---|" + "---|" * (len(names) + 1)]
    for cand in results[names[0]]:
        ok = True
        for n in names:
            elbo, v = results[n]["elbo"], results[n][cand]
            if (elbo >= 0.99 and v < 0.95) or (n.startswith("digits") and v < elbo - 0.01):
                ok = False
        cells = " | ".join(f"{results[n][cand]:.3f}" for n in names)
        lines.append(f"| {label(cand)} | {cells} | {'yes' if ok else 'no'} |")
    text = "\n".join(lines) + "\n"
    write_page(args.out, "score_inversion.md", text)


if __name__ == "__main__":
    main()

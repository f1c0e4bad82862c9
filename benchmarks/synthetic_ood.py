"""Synthetic OOD: does alignment separate in- from out-of-distribution data?
=========================================================================

The paper's synthetic OOD task: train on the rotated
mixture with k=4 components in D=50, then score a validation split of the
same mixture and samples of a k=8 mixture with another rotation. For each
aligner (None, "direct", "flow" stepping every 4 mini-batches, and "flow"
stepping every mini-batch as in the paper) and each prior (N(0, I), a
learnable Gaussian mixture with K=4), it reports, as mean +- sd over seeds
1, 2, 3:

* the in-distribution-minus-OOD gap of ``log p_Z(mu(x))`` (nats),
* the ROC AUC of ``log p_Z(mu(x))`` and of the ELBO for in-vs-OOD,
* how well ``log p_Z(mu(x))`` matches the true 2-D log-density on the
  validation split: Pearson correlation, KS statistic and Wasserstein-1
  distance between the two sets of values,
* training time per epoch.

It writes ``docs/results/flow_aligner.md``. ``--fast`` shrinks everything for the
test suite.
"""

import argparse
import time
import warnings
from pathlib import Path

import numpy as np
import torch
from joblib import Parallel, delayed
from scipy.stats import ks_2samp, pearsonr, wasserstein_distance
from sklearn.exceptions import ConvergenceWarning
from sklearn.metrics import roc_auc_score

from _report import mean_sd, mean_sd_over_seeds, provenance
from skdivae import DiVAE, FlowAligner, GaussianMixturePrior, KNNLogDensity
from skdivae.datasets import RotatedGaussianMixture

ALIGNERS = {
    "none": None,
    "direct": "direct_paper",  # the paper's formulation
    "flow": FlowAligner(),
    "flow, every batch": FlowAligner(update_every=1),
}
PRIORS = {"normal": "normal", "gmm (K=4)": GaussianMixturePrior(n_components=4)}


def run_one(seed, prior_name, aligner_name, sizes):
    """Fit one configuration on one seed; return its metrics."""
    torch.set_num_threads(1)
    train_data = RotatedGaussianMixture(4, 50, random_state=seed)
    ood_data = RotatedGaussianMixture(8, 50, random_state=1000 + seed)
    X_train, _ = train_data.sample(sizes["n_train"], random_state=seed)
    X_val, _ = train_data.sample(sizes["n_val"], random_state=seed + 100)
    X_ood, _ = ood_data.sample(sizes["n_val"], random_state=seed + 200)
    est = DiVAE(
        trim_fraction=0.0,  # the paper trains on every point
        n_components=2,
        hidden_layer_sizes=(25,),  # the paper's D - D/2 - 2 encoder
        prior=PRIORS[prior_name],
        aligner=ALIGNERS[aligner_name],
        density=KNNLogDensity(n_neighbors=100, method="pak", n_components=2),
        beta_warmup=0.5,
        alignment_warmup=1.0,
        # As in the paper, no per-feature scaling: PCA-2 of the raw data is then the
        # mixture plane up to a rotation, so rho is on the true log-density's scale.
        standardize=False,
        max_iter=sizes["epochs"],
        tol=0.0,
        n_iter_no_change=10**6,
        random_state=seed,
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        est.fit(X_train)
    lp_val, elbo_val, _ = est._diagnostic_scores(X_val)
    lp_ood, elbo_ood, _ = est._diagnostic_scores(X_ood)
    truth = train_data.log_density_2d(X_val)
    labels = np.r_[np.ones(len(X_val)), np.zeros(len(X_ood))]
    return {
        "seed": seed,
        "prior": prior_name,
        "aligner": aligner_name,
        "gap": lp_val.mean() - lp_ood.mean(),
        "auc_log_prior": roc_auc_score(labels, np.r_[lp_val, lp_ood]),
        "auc_elbo": roc_auc_score(labels, np.r_[elbo_val, elbo_ood]),
        "pearson": pearsonr(truth, lp_val)[0],
        "ks": ks_2samp(truth, lp_val).statistic,
        "w1": wasserstein_distance(truth, lp_val),
        "epoch_s": float(np.mean([h["time"] for h in est.history_])),
    }


def summarise(rows):
    """Mean and sd over seeds per configuration."""
    return mean_sd_over_seeds(rows, ("prior", "aligner"), ["gap", "auc_log_prior", "auc_elbo", "pearson", "ks", "w1", "epoch_s"])


def findings(table):
    """Sentences computed from the table: which aligner separates best, and at what cost."""
    lines = []
    for prior in PRIORS:
        gaps = {a: table[prior, a]["gap"][0] for a in ALIGNERS}
        aucs = {a: table[prior, a]["auc_log_prior"][0] for a in ALIGNERS}
        best_gap = max(gaps, key=gaps.get)
        best_auc = max(aucs, key=aucs.get)
        lines.append(
            f"- Prior {prior}: the widest gap comes with aligner '{best_gap}' "
            f"({gaps[best_gap]:.2f} nats vs {gaps['none']:.2f} without alignment); the best "
            f"log-prior ROC AUC with '{best_auc}' ({aucs[best_auc]:.3f} vs {aucs['none']:.3f})."
        )
        flow, direct = table[prior, "flow"], table[prior, "direct"]
        over = flow["gap"][0] > direct["gap"][0] and flow["w1"][0] > direct["w1"][0]
        lines.append(
            f"  Flow vs direct: gap {flow['gap'][0]:.2f} vs {direct['gap'][0]:.2f} nats, "
            f"W1 to the true log-density {flow['w1'][0]:.2f} vs {direct['w1'][0]:.2f} "
            f"({'wider separation with a worse density match: over-correction' if over else 'no sign of over-correction by this test (a wider gap with a worse W1)'})."
        )
        every, chunked = table[prior, "flow, every batch"], table[prior, "flow"]
        lines.append(
            f"  Flow stepping every batch vs every 4 batches: gap {every['gap'][0]:.2f} vs "
            f"{chunked['gap'][0]:.2f}, log-prior AUC {every['auc_log_prior'][0]:.3f} vs "
            f"{chunked['auc_log_prior'][0]:.3f}, time per epoch {every['epoch_s'][0]:.2f} s vs "
            f"{chunked['epoch_s'][0]:.2f} s (plain VAE {table[prior, 'none']['epoch_s'][0]:.2f} s)."
        )
    return lines


def write_markdown(path, table, sizes, seeds, wall):
    out = [
        "# Flow-corrected aligner: effect on the synthetic OOD task",
        "",
        provenance("synthetic_ood.py", wall),
        "",
        f"Train: rotated mixture k=4, D=50, n_train={sizes['n_train']}; validation "
        f"n={sizes['n_val']} from the same mixture; OOD: n={sizes['n_val']} from a k=8 mixture "
        f"with another rotation. DiVAE with latent 2, encoder 50-25-2, {sizes['epochs']} epochs, "
        "beta ramped over the first half, lambda over all epochs, rho = PAk (up to 100 "
        f"neighbours) on PCA-2 of the unscaled data (`standardize=False`, as in the paper). Seeds {', '.join(map(str, seeds))}; mean ± sd. The paper trains "
        "for 100 epochs; this run uses fewer to fit the time budget.",
        "",
        "Columns: `gap` = mean log p_Z(mu(x)) on validation minus on OOD (nats; larger = "
        "better separation); ROC AUC for in-vs-OOD by the log-prior and by the ELBO; Pearson, "
        "KS and W1 compare log p_Z(mu(x)) with the true 2-D log-density on validation (higher "
        "Pearson, lower KS/W1 = better calibrated); training seconds per epoch.",
        "",
        "| prior | aligner | gap | AUC log-prior | AUC ELBO | Pearson | KS | W1 | s / epoch |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for (prior, aligner), m in table.items():
        out.append(
            f"| {prior} | {aligner} | {mean_sd(m['gap'], 2)} | {mean_sd(m['auc_log_prior'])} | "
            f"{mean_sd(m['auc_elbo'])} | {mean_sd(m['pearson'])} | {mean_sd(m['ks'])} | {mean_sd(m['w1'], 2)} | "
            f"{mean_sd(m['epoch_s'], 3)} |"
        )
    out += ["", "## What the numbers say", "", *findings(table), ""]
    out += [
        "## Why the flow steps once per 4 mini-batches by default",
        "",
        "The paper fits the flow with its own optimiser; stepping it with every VAE mini-batch "
        "makes each training step pay for a second forward/backward pass through five coupling "
        "layers, which for a small VAE is as costly as the VAE step itself. By default "
        "(`FlowAligner(update_every=4)`) the flow takes one step on the union of 4 consecutive "
        "mini-batches (it still sees every sample once per epoch) and those VAE steps reuse its "
        "log-determinants. The rows 'flow' and 'flow, every batch' above measure what that "
        "changes; `FlowAligner(update_every=1)` restores the paper's schedule.",
        "",
    ]
    path.write_text("\n".join(out))


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--fast", action="store_true", help="tiny sizes, for the tests")
    parser.add_argument("--out", type=Path, default=Path("results"),
                        help="output folder (default: ./results, untracked; pass --out docs/results to update the shipped pages)")
    parser.add_argument("--n-train", type=int, default=60_000)
    parser.add_argument("--epochs", type=int, default=50)
    parser.add_argument("--n-jobs", type=int, default=1, help="parallel fits (joblib)")
    args = parser.parse_args(argv)
    sizes = {"n_train": args.n_train, "n_val": 10_000, "epochs": args.epochs}
    seeds = [1, 2, 3]
    if args.fast:
        sizes, seeds = {"n_train": 600, "n_val": 300, "epochs": 2}, [1, 2]
    tic = time.perf_counter()
    jobs = [(s, p, a) for s in seeds for p in PRIORS for a in ALIGNERS]
    rows = Parallel(n_jobs=args.n_jobs)(delayed(run_one)(s, p, a, sizes) for s, p, a in jobs)
    wall = time.perf_counter() - tic
    table = summarise(rows)
    for (prior, aligner), m in table.items():
        print(
            f"{prior:10s} {aligner:18s} gap {mean_sd(m['gap'], 2):>14s}  AUC(log-prior) "
            f"{mean_sd(m['auc_log_prior'])}  AUC(ELBO) {mean_sd(m['auc_elbo'])}  W1 {mean_sd(m['w1'], 2)}"
        )
    print("\n".join(findings(table)))
    args.out.mkdir(parents=True, exist_ok=True)
    write_markdown(args.out / "flow_aligner.md", table, sizes, seeds, wall)
    print(f"wrote {args.out / 'flow_aligner.md'} ({wall:.0f} s)")


if __name__ == "__main__":
    main()

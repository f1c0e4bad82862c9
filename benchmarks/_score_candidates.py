"""Candidate anomaly scores computed from one fitted DiVAE, for the score study
(``select_score.py``).

Every candidate is a function of quantities that one fit gives: the ELBO and the
aligned log-prior of the training and the scored rows, the posterior means, and
the density teacher's leave-one-out log-density of the training rows. So one fit
per (data set, seed, configuration) scores every candidate, and the candidates are
compared on exactly the same trained networks.
"""

import numpy as np
from scipy.stats import spearmanr
from sklearn.neighbors import NearestNeighbors

from skdivae._scoring import robust_scale

#: Training codes a latent-kNN candidate keeps at most (a random subset past that).
MAX_CODES = 10_000
LATENT_K = 5


#: Candidate names of the study -> the ``anomaly_score`` that computes them.
PACKAGE_NAMES = {"min of z": "min(elbo,log_prior)", "elbo+log_prior (IQR)": "elbo+log_prior",
                 "elbo": "elbo", "log_prior": "log_prior"}


def label(cand):
    """A candidate's name, with the ``anomaly_score`` that computes it where there is one."""
    return f'anomaly_score="{PACKAGE_NAMES[cand]}"' if cand in PACKAGE_NAMES else cand


def robust_z(train, values):
    """``(values - median(train)) / IQR(train)``: DiVAE's own robust scale."""
    center, scale = robust_scale(train)
    return (values - center) / scale


def tail_rank(train, values):
    """The empirical CDF of ``values`` among the training scores, continued below the
    lowest and above the highest training score by the robust z-score (so rows beyond
    the training range still rank among themselves): a rank scale with no ties."""
    sorted_train = np.sort(train)
    n = len(sorted_train)
    cdf = np.searchsorted(sorted_train, values, side="right") / n
    z = robust_z(train, values)
    z_lo, z_hi = robust_z(train, sorted_train[[0, -1]])
    below, above = values < sorted_train[0], values > sorted_train[-1]
    cdf = np.where(below, (z - z_lo) / n, cdf)  # <= 0: further below the range, lower
    return np.where(above, 1.0 + (z - z_hi) / n, cdf)


def latent_knn(codes_train, codes, seed, k=LATENT_K, exclude_self=False):
    """Minus the mean distance to the ``k`` nearest training codes (higher = more
    normal); the index holds at most ``MAX_CODES`` training codes."""
    rng = np.random.default_rng(seed)
    index = codes_train
    if len(index) > MAX_CODES:
        index = index[rng.choice(len(index), MAX_CODES, replace=False)]
    nn = NearestNeighbors(n_neighbors=min(k + exclude_self, len(index))).fit(index)
    dist, _ = nn.kneighbors(codes)
    if exclude_self:
        dist = dist[:, 1:]
    return -dist.mean(axis=1)


def score_kl(est, X, rows=4096):
    """The KL term of DiVAE's deterministic ELBO, per row of ``X``: the prior's
    ``score_kl`` at the unscented sigma points, as ``VAEModule.elbo`` takes it, so that
    ``elbo + kl`` is the ELBO's expected reconstruction term."""
    import torch

    module = est.module_
    dtype = module.center.dtype
    out = []
    with torch.no_grad():
        for start in range(0, X.shape[0], rows):
            x = torch.as_tensor(X[start:start + rows], dtype=dtype)
            q = module.posterior(x)
            out.append(module.prior.score_kl(q, module.prior_distribution(), module.sigma_points(q)))
    return torch.cat(out).numpy().astype(np.float64)


def parts(est, X):
    """ELBO, its KL term, aligned log-prior and posterior means of ``X`` under a fitted
    DiVAE."""
    return {
        "elbo": est._apply("elbo", X),
        "kl": score_kl(est, X),
        "log_prior": est._apply("aligned_log_prior", X),
        "codes": est._apply("posterior_mean", X),
    }


def candidate_scores(est, X_train, X_test, seed):
    """``{name: scores of X_test}`` for every candidate (higher = more normal), and
    ``{name: value}`` label-free statistics of the fit."""
    tr, te = parts(est, X_train), parts(est, X_test)
    rho_train = getattr(est.density_, "log_density_", None)
    center, scale = est.module_.center.numpy(), est.module_.scale.numpy()
    rho_test = est.density_.score_samples((X_test - center) / scale)
    zE = robust_z(tr["elbo"], te["elbo"])
    zP = robust_z(tr["log_prior"], te["log_prior"])
    reliability = max(0.0, spearmanr(tr["log_prior"], rho_train)[0]) if rho_train is not None else 0.0
    knn_train = latent_knn(tr["codes"], tr["codes"], seed, exclude_self=True)
    knn_test = latent_knn(tr["codes"], te["codes"], seed)
    zK = robust_z(knn_train, knn_test)
    zR = robust_z(rho_train, rho_test) if rho_train is not None else np.zeros_like(zE)
    # The ELBO's expected reconstruction term E_q[log p(x | z)], without its KL (round 2).
    recon_train, recon_test = tr["elbo"] + tr["kl"], te["elbo"] + te["kl"]
    scores = {
        "elbo": te["elbo"],
        "log_prior": te["log_prior"],
        "elbo+log_prior (IQR)": zE + zP,
        "elbo + 0.5 log_prior (IQR)": zE + 0.5 * zP,
        "elbo + 2 log_prior (IQR)": zE + 2.0 * zP,
        "rank mean": tail_rank(tr["elbo"], te["elbo"]) + tail_rank(tr["log_prior"], te["log_prior"]),
        "min of z": np.minimum(zE, zP),
        "elbo + reliability x log_prior": zE + reliability * zP,
        "latent kNN": knn_test,
        "elbo + latent kNN (IQR)": zE + zK,
        "teacher rho (stores rows)": rho_test,
        "elbo + teacher rho (IQR, stores rows)": zE + zR,
        "reconstruction term (ELBO without its KL)": recon_test,
        "reconstruction + log_prior (IQR)": robust_z(recon_train, recon_test) + zP,
    }
    stats = {
        "train_spearman_prior_rho": reliability,
        "test_spearman_prior_rho": float(spearmanr(te["log_prior"], rho_test)[0]),
        "test_spearman_elbo_rho": float(spearmanr(te["elbo"], rho_test)[0]),
        "test_spearman_combined_rho": float(spearmanr(zE + zP, rho_test)[0]),
        "test_mean_elbo": float(np.mean(te["elbo"])),
        "test_mean_log_prior": float(np.mean(te["log_prior"])),
        "train_mean_elbo": float(np.mean(tr["elbo"])),
    }
    return scores, stats

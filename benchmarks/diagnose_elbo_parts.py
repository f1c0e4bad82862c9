"""What alignment does to each part of the ELBO (a diagnosis for issue 27)
=========================================================================

The ELBO that ``DiVAE()`` scores is a sum: the expected reconstruction log-likelihood
minus the KL divergence of the posterior from the prior. Alignment makes the log-prior at
the codes follow the teacher rho, so it acts on the ELBO through the KL term; the
reconstruction term sums over every feature. This diagnosis fits ``DiVAE()`` and
``DiVAE(aligner=None)`` on the development sets, in both protocols of ``select_score.py``
(anomalies in the training data; clean training data), and reads each part on its own:
the ROC AUC of the reconstruction term, of the KL term (a large KL read as anomalous) and
of their sum (the ELBO), and each part's spread on the training rows (its interquartile
range, in nats), which sets how much it weighs in the sum. A second part repeats the clean
protocol outside the development sets, on scikit-learn's bundled digits (each digit in
turn is the normal class: 70 % of its rows train, the other 30 % and 60 rows of the other
digits are scored).

It chooses nothing: it runs on the reporting seeds (0, 1, 2). Every fit is one JSON line
in ``--cache``, so a cut-off run resumes.

    python benchmarks/diagnose_elbo_parts.py --data-dir ../shared/data/adbench \\
        --cache results/elbo_parts.jsonl --out docs/results

Writes ``elbo_parts.md`` into ``--out`` (default: print). ``--fast`` runs two small
synthetic sets and two digits, for the tests.
"""

import time
import warnings

import numpy as np
from scipy.stats import spearmanr
from sklearn.metrics import roc_auc_score

from _adbench import study_datasets, study_parser
from _report import per_config_set, provenance, run_config_fits, write_page
from select_delta import mean, wtl
from select_score import split

ALIGNED = "DiVAE()"
NONE = "DiVAE(aligner=None)"
CONFIGS = [ALIGNED, NONE]
PROTOCOLS = ("contaminated", "clean")
DIGITS = "digits, one class at a time (clean)"
PARTS = (("auc", "ELBO"), ("auc_recon", "reconstruction"), ("auc_kl", "KL"))


def elbo_parts(est, X, chunk=2000):
    """``(reconstruction, KL)`` per row of the fitted ``est`` as its ELBO takes them (the
    reconstruction term at the ``2L`` sigma points, the prior's ``score_kl``), in nats."""
    import torch

    module = est.module_
    recon, kl = [], []
    with torch.no_grad():
        for start in range(0, len(X), chunk):
            x = torch.as_tensor(np.asarray(X[start:start + chunk], dtype=np.float64))
            q = module.posterior(x)
            z = module.sigma_points(q)
            recon.append(module.log_likelihood(z, x).mean(0).numpy())
            kl.append(module.prior.score_kl(q, module.prior_distribution(), z).numpy())
    return np.concatenate(recon), np.concatenate(kl)


def spread(values):
    q25, q75 = np.percentile(values, [25, 75])
    return float(q75 - q25)


def read_parts(est, X_train, X_test, y_test):
    """The record's numbers for one fit: each part's ROC AUC on the test rows (anomalies
    positive), each part's spread on the training rows, and how far the parts' sum is from
    ``score_samples`` (a check that they are the ELBO's parts)."""
    recon, kl = elbo_parts(est, X_test)
    train_recon, train_kl = elbo_parts(est, X_train)
    elbo = est.score_samples(X_test)
    return {
        "auc": float(roc_auc_score(y_test, -elbo)),
        "auc_recon": float(roc_auc_score(y_test, -recon)),
        "auc_kl": float(roc_auc_score(y_test, kl)),
        "spread_recon": spread(train_recon),
        "spread_kl": spread(train_kl),
        "parts_gap": float(np.max(np.abs(recon - kl - elbo)) / max(1.0, np.max(np.abs(elbo)))),
    }


def one_fit(data, seed, protocol, config, max_iter):
    import torch

    from skdivae import DiVAE

    torch.set_num_threads(1)
    rec = {"dataset": data["name"], "seed": seed, "protocol": protocol, "config": config}
    tic = time.perf_counter()
    try:
        if protocol == "digits":
            X_train, X_test, y_test = data["split"](seed)
        else:
            X_train, X_test, y_test = split(data, seed, protocol)
        params = {} if config == ALIGNED else {"aligner": None}
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            est = DiVAE(random_state=seed, max_iter=max_iter, **params).fit(X_train)
        rec.update(read_parts(est, X_train, X_test, y_test))
    except Exception as exc:  # one failure must not stop the study
        rec["error"] = f"{type(exc).__name__}: {exc}"
    rec["time"] = time.perf_counter() - tic
    return rec


def digit_tasks(digits):
    """One task per digit in ``digits``: ``split(seed)`` gives the clean training rows of
    that digit and the scored rows (its other 30 %, and 60 rows of other digits)."""
    from sklearn.datasets import load_digits

    X, y = load_digits(return_X_y=True)

    def task(c):
        def make_split(seed):
            rng = np.random.default_rng(seed)
            rows = np.flatnonzero(y == c)
            rng.shuffle(rows)
            n_train = int(0.7 * len(rows))
            others = rng.choice(np.flatnonzero(y != c), 60, replace=False)
            test = np.r_[rows[n_train:], others]
            labels = np.r_[np.zeros(len(rows) - n_train), np.ones(60)]
            return X[rows[:n_train]], X[test], labels

        return {"name": f"digit_{c}", "split": make_split, "X": X[y == c]}

    return [task(c) for c in digits]


def summary(records, seeds, protocol):
    """Per configuration: the mean ROC AUC of each part and the median ratio of the KL
    term's spread to the reconstruction term's, over data sets (each the mean over seeds)."""
    tables = {m: per_config_set(records, seeds, protocol, CONFIGS, ALIGNED, m)
              for m in ("auc", "auc_recon", "auc_kl", "spread_recon", "spread_kl")}
    lines = ["| model | ELBO | reconstruction | KL | KL spread / reconstruction spread "
             "(median) |", "|---|---|---|---|---|"]
    for c in CONFIGS:
        if not tables["auc"].get(c):
            continue
        ratio = np.median([tables["spread_kl"][c][d] / max(tables["spread_recon"][c][d], 1e-12)
                           for d in tables["auc"][c]])
        lines.append(f"| {c} | " + " | ".join(f"{mean(tables[m][c]):.4f}" for m, _ in PARTS)
                     + f" | {ratio:.3f} |")
    return tables, lines


def effect_lines(tables):
    """Alignment's effect on each part, and whether it helps the ELBO where the aligned KL
    term is the better detector of the two parts."""
    if not all(tables[m].get(c) for m in ("auc", "auc_recon", "auc_kl") for c in CONFIGS):
        return ["Fits missing."]
    lines = []
    for m, name in PARTS:
        a, b = tables[m][ALIGNED], tables[m][NONE]
        lines.append(f"- {name}: alignment {mean(a) - mean(b):+.4f} mean ROC AUC "
                     "(wins / ties / losses %d / %d / %d)." % wtl(a, b))
    sets = list(tables["auc"][ALIGNED])
    gain = np.array([tables["auc"][ALIGNED][d] - tables["auc"][NONE][d] for d in sets])
    lead = np.array([tables["auc_kl"][ALIGNED][d] - tables["auc_recon"][ALIGNED][d]
                     for d in sets])
    for label, mask in (("at least as well as", lead >= 0), ("worse than", lead < 0)):
        if mask.any():
            lines.append(f"- Data sets where the aligned KL term ranks anomalies {label} "
                         f"the reconstruction term: {int(mask.sum())}, alignment's effect on "
                         f"the ELBO there {gain[mask].mean():+.4f}.")
    if len(sets) > 2:
        lines.append(f"- Spearman, over data sets, of alignment's effect on the ELBO with the "
                     f"aligned KL term's lead over the reconstruction term: "
                     f"{spearmanr(gain, lead)[0]:.2f}.")
    return lines


def per_set_table(tables):
    lines = ["| data set | ELBO, aligned / none | reconstruction, aligned / none | KL, aligned "
             "/ none | KL spread / reconstruction spread, aligned / none |",
             "|---|---|---|---|---|"]
    for d in tables["auc"].get(ALIGNED, {}):
        cells = [" / ".join(f"{tables[m][c][d]:.3f}" for c in CONFIGS) for m, _ in PARTS]
        cells.append(" / ".join(
            f"{tables['spread_kl'][c][d] / max(tables['spread_recon'][c][d], 1e-12):.3f}"
            for c in CONFIGS))
        lines.append(f"| {d} | " + " | ".join(cells) + " |")
    return lines


def report(records, seeds, wall):
    gap = max((r["parts_gap"] for r in records), default=0.0)
    out = ["# What alignment does to each part of the ELBO", "",
           provenance("diagnose_elbo_parts.py", wall), "",
           "`DiVAE()` scores the ELBO: the expected reconstruction log-likelihood minus the KL "
           "divergence of the posterior from the prior. Alignment acts on the prior, so on the "
           "KL term. Each fit below is read three ways: the ELBO, its reconstruction term "
           "alone and its KL term alone (a large KL read as anomalous), as ROC AUC with the "
           "anomalies as the positive class; the spread of a part is its interquartile range "
           "over the training rows, in nats, which sets how much the part weighs in the sum. "
           f"Seeds {', '.join(map(str, seeds))}; the parts add up to the scores "
           f"`score_samples` returns (largest relative gap {gap:.1e}). This page chooses "
           "nothing.", ""]
    for protocol, title in (("contaminated", "Anomalies in the training data"),
                            ("clean", "Clean training data (the OOD use)"),
                            ("digits", "Outside the development sets: " + DIGITS)):
        tables, lines = summary(records, seeds, protocol)
        if not tables["auc"].get(ALIGNED):
            continue
        out += [f"## {title}", ""] + lines + [""] + effect_lines(tables) + [""]
        out += ["<details><summary>Per data set (mean over the seeds)</summary>", ""]
        out += per_set_table(tables) + ["", "</details>", ""]
    return "\n".join(out)


def main(argv=None):
    parser = study_parser(__doc__.splitlines()[0], [0, 1, 2])
    args = parser.parse_args(argv)
    tic = time.perf_counter()
    datasets, max_iter = study_datasets(parser, args)
    digits = digit_tasks(range(2) if args.fast else range(10))
    records = {}
    for sets, protocols in ((datasets, PROTOCOLS), (digits, ("digits",))):
        for r in run_config_fits(one_fit, sets, args.seeds, protocols, CONFIGS, args.cache,
                                 args.n_jobs, max_iter):
            records[(r["dataset"], r["seed"], r["protocol"], r["config"])] = r
    records = list(records.values())
    seeds = sorted({r["seed"] for r in records})
    write_page(args.out, "elbo_parts.md", report(records, seeds, time.perf_counter() - tic))


if __name__ == "__main__":
    main()

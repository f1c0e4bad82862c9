"""When is a ConvergenceWarning worth acting on? (issue 29)
========================================================

A default ``DiVAE()`` fit that runs to ``max_iter`` with its loss still falling
used to warn "consider a larger max_iter" in most fits on small tables. This
script measures whether acting on that warning helps the detector.

For every data set and seed it fits ``DiVAE()`` (the defaults) and
``DiVAE(max_iter=300)`` (what the warning advises) and records whether the
default fit's loss was still falling at ``max_iter`` (the old rule) and the
test ROC AUC of both fits.

First candidate (the rule written before its run): warn only when, in
addition, the ranking of the training rows has not settled (Spearman < 0.99
between the ELBO's and log-prior's values on 1 024 training rows at the start
of the last 10 epochs and at the end). It stays if (1) default fits warn in
fewer than 10 % of the fits and (2) on the fits it silences, acting on the old
warning moves the mean ROC AUC by less than 0.005 either way. That gate lived
in the library for its run (the ``gate_warned`` and ``spearman`` fields of the
cache); it failed the rule and was removed, so later runs do not record it.

Data: the ADBench sets in ``--data-dir`` (the protocol of ``bench_adbench.py``:
stratified 70/30 split, StandardScaler, fit on the training part with its
anomalies) and four of scikit-learn's bundled sets with a few rows of another
class mixed in as anomalies (breast cancer: benign + 20 malignant; digits: 0-4
+ 40 images of 5-9; wine: classes 0 and 1 + 5 of class 2; iris: setosa and
versicolor + 5 virginica), same protocol.

    python benchmarks/check_convergence.py --data-dir ../shared/data/adbench \\
        --cache /tmp/convergence.jsonl --out docs/results
"""

import argparse
import time
import warnings
from pathlib import Path

import numpy as np
from sklearn.datasets import load_breast_cancer, load_digits, load_iris, load_wine
from sklearn.exceptions import ConvergenceWarning
from sklearn.metrics import roc_auc_score

from _adbench import list_datasets, load_dataset, split_and_scale, synthetic_dataset
from _report import append_jsonl, provenance, read_jsonl, write_page
from skdivae import DiVAE
from skdivae._training import loss_still_falling, warmup_epochs

SEEDS = (0, 1)
CONFIGS = {"DiVAE()": {}, "DiVAE(max_iter=300)": {"max_iter": 300}}


def bundled_datasets():
    """sklearn's bundled sets with a few rows of another class as anomalies."""
    rng = np.random.default_rng(0)

    def mixed(X, normal, odd, n_odd, name):
        picked = rng.choice(np.flatnonzero(odd), n_odd, replace=False)
        rows = np.r_[np.flatnonzero(normal), picked]
        y = np.r_[np.zeros(normal.sum(), dtype=int), np.ones(n_odd, dtype=int)]
        return {"name": name, "X": X[rows].astype(float), "y": y, "n_rows_file": len(rows)}

    bc, digits, wine, iris = load_breast_cancer(), load_digits(), load_wine(), load_iris()
    return [
        mixed(bc.data, bc.target == 1, bc.target == 0, 20, "sklearn breast_cancer"),
        mixed(digits.data, digits.target < 5, digits.target >= 5, 40, "sklearn digits"),
        mixed(wine.data, wine.target < 2, wine.target == 2, 5, "sklearn wine"),
        mixed(iris.data, iris.target < 2, iris.target == 2, 5, "sklearn iris"),
    ]


def fit_record(data, seed, config, fast):
    X_train, X_test, y_test = split_and_scale(data, seed)
    params = dict(CONFIGS[config], random_state=seed)
    if fast:
        params["max_iter"] = 8 if config == "DiVAE()" else 24
    tic = time.perf_counter()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", ConvergenceWarning)
        est = DiVAE(**params).fit(X_train)
    fit_time = time.perf_counter() - tic
    # The old rule: the budget ran out with the loss still falling over the last epochs
    # after the warm-ups (what fit_loop checks).
    warm_end = warmup_epochs("auto", est.n_iter_)
    after = [h["loss"] for h in est.history_ if h["epoch"] - 1 >= warm_end]
    budget = params.get("max_iter", 100)
    falling = est.n_iter_ == budget and len(after) >= 5 and loss_still_falling(after[-10:])
    return {
        "set": data["name"], "seed": seed, "config": config, "n_iter": est.n_iter_,
        "auc": float(roc_auc_score(y_test, -est.score_samples(X_test))),
        "falling": bool(falling),
        "warned": any(issubclass(w.category, ConvergenceWarning) for w in caught),
        "fit_time": fit_time,
    }


def summary(records):
    by = {(r["set"], r["seed"], r["config"]): r for r in records}
    pairs = [(by[k], by[(k[0], k[1], "DiVAE(max_iter=300)")]) for k in by
             if k[2] == "DiVAE()" and (k[0], k[1], "DiVAE(max_iter=300)") in by]

    def delta(group):
        return float(np.mean([long["auc"] - d["auc"] for d, long in group])) if group else float("nan")

    old = [(d, long) for d, long in pairs if d["falling"]]
    gate = [(d, long) for d, long in pairs if "gate_warned" in d]
    return {
        "n": len(pairs), "pairs": pairs, "old": old, "delta_old": delta(old),
        "quiet": [(d, long) for d, long in pairs if not d["falling"]],
        "delta_quiet": delta([(d, long) for d, long in pairs if not d["falling"]]),
        "delta_all": delta(pairs),
        "gate": gate,
        "gate_warns": [(d, long) for d, long in gate if d["gate_warned"]],
        "gate_silenced": [(d, long) for d, long in gate if d["falling"] and not d["gate_warned"]],
        "time_ratio": float(np.mean([long["fit_time"] / d["fit_time"] for d, long in pairs]))
        if pairs else float("nan"),
    }


def page(records, wall, fast):
    s = summary(records)
    n = max(s["n"], 1)
    lines = [
        "# When a ConvergenceWarning is worth acting on",
        "",
        provenance("check_convergence.py", wall),
        "",
        f"Fits: {len(records)}; seeds {', '.join(map(str, SEEDS))}"
        + (" (`--fast`: synthetic data, 8 and 24 epochs)" if fast else "")
        + "; fit time summed over them. Each data set and seed: `DiVAE()` and "
        "`DiVAE(max_iter=300)`, what the warning advised; test ROC AUC as in "
        "`docs/results/adbench.md`. Data: the 21 ADBench development sets and four of "
        "scikit-learn's bundled sets with a few rows of another class as anomalies.",
        "",
        "## Does acting on the warning help?",
        "",
        f"The old rule (warn when a fit reaches `max_iter` with its loss still falling) fired "
        f"on **{len(s['old'])} of {s['n']}** default fits ({len(s['old']) / n:.0%}). Training "
        f"those fits to `max_iter=300`, as it advised ({s['time_ratio']:.1f}x the fit time on "
        f"average), changed their mean test ROC AUC by **{s['delta_old']:+.4f}**; on the fits "
        f"it did not fire on, {s['delta_quiet']:+.4f}; on all, {s['delta_all']:+.4f}. A falling "
        "loss at the end of the default budget is mostly the decoder's noise scale still "
        "shrinking: it lowers the loss without making the ranking of rows better.",
        "",
    ]
    if s["gate"]:
        g, warns, silenced = s["gate"], s["gate_warns"], s["gate_silenced"]
        d_sil = (float(np.mean([long["auc"] - d["auc"] for d, long in silenced]))
                 if silenced else float("nan"))
        d_warn = (float(np.mean([long["auc"] - d["auc"] for d, long in warns]))
                  if warns else float("nan"))
        passed = len(warns) < 0.10 * len(g) and abs(d_sil) < 0.005
        lines += [
            "## First candidate: warn only when the ranking still moves",
            "",
            "Rule, written before the run: warn only if, in addition, the ranking of the "
            "training rows has not settled (Spearman correlation below 0.99 between the ELBO's "
            "and the log-prior's values on 1 024 training rows at the start of the last 10 "
            "epochs and at the end); keep this gate if (1) default fits warn in fewer than 10 % "
            "of the fits and (2) on the fits it silences, acting on the old warning moves the "
            "mean ROC AUC by less than 0.005 either way.",
            "",
            f"- It warned on {len(warns)} of {len(g)} default fits ({len(warns) / len(g):.0%}; "
            "target below 10 %).",
            f"- On the {len(silenced)} fits it silenced, acting would have changed the mean ROC "
            f"AUC by {d_sil:+.4f} (target within 0.005); on the {len(warns)} it kept, by "
            f"{d_warn:+.4f}: a moving ranking did not mean that training on helps.",
            f"- Decision: **{'kept' if passed else 'rejected, and removed from the library'}**.",
            "",
        ]
    lines += [
        "## Decision",
        "",
        "With `max_iter=\"auto\"` (the default), the library chose the budget, and running "
        "out of it with the loss still falling is not evidence that more epochs help the "
        "detector (above): such a fit no longer warns, and neither does one with a `max_iter` "
        "of your own at least as large as what `\"auto\"` gives on the data (the fits above "
        "ran exactly that budget). A smaller `max_iter` you set yourself still warns when "
        "the loss is still falling at the end, since then you chose a shorter budget. So no "
        "default fit warns (the target was fewer than 10 %), and a warning that does appear "
        "follows the user's own choice of fewer epochs.",
        "",
        "What to do when a fit warns, or to check a default fit: look at `loss_curve_`, "
        "compare the scores of a longer fit with `anomaly_roc_auc` on labelled rows if you "
        "have some, or hold out data and stop on it (`early_stopping=True`). Image-like data "
        "gained from longer training here (sklearn's digits); tabular sets mostly lost.",
        "",
        "## Every fit",
        "",
        "| data set | seed | epochs | loss still falling | ranking gate (Spearman) | ROC AUC | "
        "ROC AUC at max_iter=300 |",
        "|---|---:|---:|---|---|---:|---:|",
    ]
    for d, long in s["pairs"]:
        gate = ""
        if "gate_warned" in d and d["falling"]:
            gate = ("warns" if d["gate_warned"] else "silent") + (
                f" ({d['spearman']:.4f})" if d.get("spearman") is not None else "")
        lines.append(
            f"| {d['set']} | {d['seed']} | {d['n_iter']} | {'yes' if d['falling'] else ''} | "
            f"{gate} | {d['auc']:.4f} | {long['auc']:.4f} |"
        )
    return "\n".join(lines) + "\n"


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", type=Path, help="folder of ADBench .npz files")
    parser.add_argument("--fast", action="store_true", help="two synthetic sets, few epochs")
    parser.add_argument("--cache", type=Path, help="JSON-lines cache: one record per fit")
    parser.add_argument("--out", type=Path, help="folder for convergence.md (default: print)")
    args = parser.parse_args(argv)
    if args.fast:
        datasets = [synthetic_dataset(f"synthetic {i}", i) for i in (0, 1)]
    else:
        names = list_datasets(args.data_dir) if args.data_dir else []
        datasets = [load_dataset(args.data_dir, name, 10_000) for name in names]
        datasets += bundled_datasets()
    records = read_jsonl(args.cache)
    done = {(r["set"], r["seed"], r["config"]) for r in records}
    handle = args.cache.open("a") if args.cache else None
    try:
        for data in datasets:
            for seed in SEEDS:
                for config in CONFIGS:
                    if (data["name"], seed, config) in done:
                        continue
                    record = fit_record(data, seed, config, args.fast)
                    records.append(record)
                    append_jsonl(handle, record)
                    print(f"{data['name']} seed {seed} {config}: AUC {record['auc']:.4f} "
                          f"epochs {record['n_iter']} loss still falling {record['falling']} "
                          f"warned {record['warned']} ({record['fit_time']:.1f}s)", flush=True)
    finally:
        if handle is not None:
            handle.close()
    wall = sum(r["fit_time"] for r in records)
    write_page(args.out, "convergence.md", page(records, wall, args.fast))


if __name__ == "__main__":
    main()

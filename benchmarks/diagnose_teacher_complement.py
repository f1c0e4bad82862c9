"""How much could a density teacher add to the ELBO? (a diagnosis for issue 27)
===========================================================================

Alignment carries the teacher rho into the log-prior, so a detector that reads
rho itself beside the ELBO bounds what alignment can add to the ELBO (short of
learning something rho does not hold). With the shipped teacher
(``KNNLogDensity(30, method="knn", n_components=8)``) that bound is small
(``score_study.md``: about +0.002 mean ROC AUC). This diagnosis asks which
teacher would leave more room: for each candidate, fitted on the training
part, it reports the candidate's ROC AUC alone and that of the sum of the
robust z-scores (training median and IQR) of the unaligned model's ELBO and the
candidate, on the development sets, in both protocols of ``select_score.py``
(anomalies in the training data; clean training data). Candidates: kNN
log-densities with 5 or 30 neighbours, on PCA-8 or on every feature, and,
for reference (not log-densities, so not teachers as they stand),
IsolationForest and LOF(novelty).

It chooses nothing: it runs on the selection seeds (10, 11) only and writes a
page for the next study of the teacher. Every (data set, seed, protocol) is one
JSON line in ``--cache``, so a cut-off run resumes.

    python benchmarks/diagnose_teacher_complement.py --data-dir ../shared/data/adbench \\
        --cache results/teacher_complement.jsonl --out docs/results

``--fast`` runs two small synthetic sets, for the tests.
"""

import time
import warnings

import numpy as np
from sklearn.metrics import roc_auc_score

from _adbench import study_datasets, study_parser
from _report import provenance, read_jsonl, run_cached, write_page
from _score_candidates import robust_z
from select_score import split

SEEDS = [10, 11]
PROTOCOLS = ["contaminated", "clean"]
SHIPPED = "kNN log-density, k=30, PCA-8 (the shipped teacher)"


def candidates(seed):
    """name -> unfitted estimator with ``score_samples`` (higher = more normal)."""
    from sklearn.ensemble import IsolationForest
    from sklearn.neighbors import LocalOutlierFactor

    from skdivae import KNNLogDensity

    return {
        SHIPPED: KNNLogDensity(30, method="knn", n_components=8, random_state=seed),
        "kNN log-density, k=5, PCA-8": KNNLogDensity(5, method="knn", n_components=8,
                                                    random_state=seed),
        "kNN log-density, k=30, every feature": KNNLogDensity(30, method="knn",
                                                             random_state=seed),
        "kNN log-density, k=5, every feature": KNNLogDensity(5, method="knn", random_state=seed),
        "IsolationForest (reference)": IsolationForest(random_state=seed),
        "LOF(novelty) (reference)": LocalOutlierFactor(novelty=True),
    }


def one_split(data, seed, protocol, max_iter):
    import torch

    from skdivae import DiVAE

    torch.set_num_threads(1)
    rec = {"dataset": data["name"], "seed": seed, "protocol": protocol}
    tic = time.perf_counter()
    try:
        X_train, X_test, y_test = split(data, seed, protocol)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            est = DiVAE(aligner=None, max_iter=max_iter, random_state=seed).fit(X_train)
            elbo_train, elbo_test = est.score_samples(X_train), est.score_samples(X_test)
            z_elbo = robust_z(elbo_train, elbo_test)
            rec["auc"] = {"ELBO (aligner=None)": float(roc_auc_score(y_test, -elbo_test))}
            rec["auc_sum"] = {}
            for name, teacher in candidates(seed).items():
                teacher.fit(X_train)
                t_train, t_test = teacher.score_samples(X_train), teacher.score_samples(X_test)
                rec["auc"][name] = float(roc_auc_score(y_test, -t_test))
                combined = z_elbo + robust_z(t_train, t_test)
                rec["auc_sum"][name] = float(roc_auc_score(y_test, -combined))
    except Exception as exc:  # one failure must not stop the diagnosis
        rec["error"] = f"{type(exc).__name__}: {exc}"
    rec["time"] = time.perf_counter() - tic
    return rec


def run(datasets, seeds, cache, n_jobs, max_iter):
    records = read_jsonl(cache)
    done = {(r["dataset"], r["seed"], r["protocol"]) for r in records if "error" not in r}
    tasks = [(d, s, p) for s in seeds for p in PROTOCOLS for d in datasets
             if (d["name"], s, p) not in done]
    tasks.sort(key=lambda t: -t[0]["X"].size)
    print(f"{len(done)} splits cached", flush=True)
    run_cached(records, [(d, s, p, max_iter) for d, s, p in tasks], one_split, cache, n_jobs,
               lambda r: f"{r['dataset']} seed {r['seed']} {r['protocol']} {r.get('error', '')}")
    return [r for r in records if "auc" in r and r["seed"] in seeds]


def protocol_table(records, protocol):
    rows = [r for r in records if r["protocol"] == protocol]
    if not rows:
        return []
    names = list(rows[0]["auc_sum"])
    elbo = np.mean([r["auc"]["ELBO (aligner=None)"] for r in rows])
    lines = [f"## {protocol} ({len(rows)} data set x seed splits)", "",
             f"The unaligned model's ELBO alone: mean ROC AUC {elbo:.4f}.", "",
             "| candidate teacher | alone | ELBO + candidate (robust z-scores summed) | "
             "gain over the ELBO | splits where the sum gains > 0.005 / loses > 0.005 |",
             "|---|---|---|---|---|"]
    for name in sorted(names, key=lambda n: -np.mean([r["auc_sum"][n] for r in rows])):
        alone = np.mean([r["auc"][name] for r in rows])
        both = np.array([r["auc_sum"][name] for r in rows])
        gain = both - np.array([r["auc"]["ELBO (aligner=None)"] for r in rows])
        lines.append(f"| {name} | {alone:.4f} | {both.mean():.4f} | {gain.mean():+.4f} | "
                     f"{(gain > 0.005).sum()} / {(gain < -0.005).sum()} |")
    return lines + [""]


def report(records, wall):
    lines = [
        "# How much could a density teacher add to the ELBO?", "",
        provenance("diagnose_teacher_complement.py", wall), "",
        f"Splits: {len(records)} (one `DiVAE(aligner=None)` fit and six candidates each; those "
        f"in `--cache` reused); time summed over them, one thread each: "
        f"{sum(r['time'] for r in records) / 60:.1f} min. Selection seeds only: this page "
        "chooses nothing.", "",
        "The split, scaling and protocols of `benchmarks/select_score.py` (21 development "
        "sets). Each candidate is fitted on the training part (the normal rows only in the "
        "clean protocol); the sum adds the robust z-scores (training median and IQR) of the "
        "unaligned model's ELBO and of the candidate. A teacher's sum bounds what aligning "
        "with it could add to the ELBO, short of the model learning something the teacher "
        "does not hold.", "",
    ]
    for protocol in PROTOCOLS:
        lines += protocol_table(records, protocol)
    return "\n".join(lines) + "\n"


def main(argv=None):
    parser = study_parser(__doc__.splitlines()[0], SEEDS)
    args = parser.parse_args(argv)
    tic = time.perf_counter()
    datasets, max_iter = study_datasets(parser, args)
    records = run(datasets, args.seeds, args.cache, args.n_jobs, max_iter)
    write_page(args.out, "teacher_complement.md", report(records, time.perf_counter() - tic))


if __name__ == "__main__":
    main()
